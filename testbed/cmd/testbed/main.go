// Command testbed drives the local test bed: `image` builds the Qdrant stand-in image, `demo` runs the demo on a
// fresh machine (Vault dev server + stand-in containers), `down` removes whatever a crashed run left behind, `k8s`
// runs the test bed's single-node Kubernetes cluster until Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/qdrantrotator/rotator/testbed/dockerbed"
	"github.com/qdrantrotator/rotator/testbed/harness"
	"github.com/qdrantrotator/rotator/testbed/k8s"
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
  k8s [-image REF]...
                start a single-node Kubernetes cluster (testbed/k8s) with the images
                imported, print its kubeconfig path, and tear it down on Ctrl-C
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
	case "k8s":
		fs := flag.NewFlagSet("k8s", flag.ContinueOnError)
		fs.SetOutput(stderr)
		var images imageList
		fs.Var(&images, "image", "a Docker image to import into the cluster (repeatable)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		err = runK8s(ctx, stdout, stderr, images)
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

// imageList is a repeatable -image flag.
type imageList []string

func (l *imageList) String() string     { return strings.Join(*l, ",") }
func (l *imageList) Set(v string) error { *l = append(*l, v); return nil }

// runK8s starts the cluster, prints its kubeconfig path on stdout (how to use it on stderr), waits for ctx (Ctrl-C)
// and tears it down.
func runK8s(ctx context.Context, stdout, stderr io.Writer, images []string) (err error) {
	began := time.Now()
	c, err := k8s.Start(ctx, k8s.Options{Images: images})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stderr, "tearing down the kubernetes cluster")
		err = errors.Join(err, c.Stop())
	}()
	fmt.Fprintf(stderr, "kubernetes cluster up in %s at %s (logs in %s)\n", time.Since(began).Round(time.Second), c.Server, filepath.Join(c.Dir(), "logs"))
	fmt.Fprintf(stderr, "pods on bridge %s (%s), reachable from this host by pod IP\n", c.Bridge, c.Subnet)
	fmt.Fprintf(stderr, "  %s --kubeconfig %s get nodes\nCtrl-C tears it down\n", filepath.Join(c.BinDir, "kubectl"), c.Kubeconfig)
	fmt.Fprintln(stdout, c.Kubeconfig)
	<-ctx.Done()
	return nil
}

func withEngine(ctx context.Context, f func(*dockerbed.Engine) error) error {
	eng, err := dockerbed.New(ctx)
	if err != nil {
		return err
	}
	defer eng.Close()
	return f(eng)
}
