// Command testbed drives the local test bed: `image` builds the Qdrant stand-in image, `demo` runs the demo on a
// fresh machine (Vault dev server + stand-in containers), `down` removes whatever a crashed run left behind.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/qdrantrotator/rotator/testbed/dockerbed"
	"github.com/qdrantrotator/rotator/testbed/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: testbed <command>

  image         build the Qdrant stand-in image and print its tag
  demo [-keep] [-rotator PATH]
                run the demo with the rotator binary at PATH (default bin/rotator);
                with -keep, stay up until Ctrl-C
  down          remove every container, network and volume the test bed made
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "image":
		err = withEngine(ctx, func(eng *dockerbed.Engine) error {
			tag, err := harness.BuildStandinImage(ctx, eng)
			if err == nil {
				fmt.Fprintln(stdout, tag)
			}
			return err
		})
	case "down":
		err = withEngine(ctx, func(eng *dockerbed.Engine) error { return harness.Sweep(ctx, eng, true) })
	case "demo":
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		fs.SetOutput(stderr)
		keep := fs.Bool("keep", false, "stay up until Ctrl-C, then remove everything")
		rotator := fs.String("rotator", "bin/rotator", "the rotator binary")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		err = demo(ctx, stdout, *rotator, *keep)
	default:
		fmt.Fprintf(stderr, "testbed: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "testbed %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func withEngine(ctx context.Context, f func(*dockerbed.Engine) error) error {
	eng, err := dockerbed.New(ctx)
	if err != nil {
		return err
	}
	defer eng.Close()
	return f(eng)
}
