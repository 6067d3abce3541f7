// Command rotator rotates the API keys of Qdrant deployments running in Docker, keeping every key in Vault.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/qdrantrotator/rotator/rotation"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes, documented in the README.
const (
	exitOK         = 0
	exitError      = 1 // the command failed (Vault, Docker, a node); a rotation it began is resumable
	exitUsage      = 2 // bad command line or config file
	exitLocked     = 3 // another rotator holds the deployment's lease
	exitDrift      = 4 // a node does not accept Vault's current key
	exitRolledBack = 5 // the rotation failed and was rolled back: every node is on Vault's current key
	exitUnsafe     = 6 // the cluster is not safe for a rolling restart; nothing was changed
)

const usage = `rotator rotates the API keys of Qdrant deployments running in Docker, keeping every key in Vault.

Usage:
  rotator <command> [flags]

Commands:
  rotate    rotate the admin key of one deployment, or all (--config FILE [--deployment NAME]
            [--emergency] [--dry-run] [--adopt] [--output text|json])
  status    show key age, last rotation and journal state (--config FILE [--deployment NAME] [--output])
  verify    check every node against Vault's current key (--config FILE [--deployment NAME] [--output])
  daemon    run the rotation daemon: schedules, HTTP API, metrics, audit events (--config FILE [--listen ADDR])
            rotate --server URL --token-file FILE --deployment NAME [--emergency] [--dry-run] asks a running
            daemon and follows the rotation until it ends
  audit     review the fleet's security posture (--config FILE [--deployment NAME] [--output text|json]
            [--fail-on low|medium|high], default high)
  check     validate a config file and print what it describes (--config FILE); contacts nothing
  version   print the version and exit
  help      print this help

Exit codes: 0 ok, 1 error, 2 usage or config error, 3 locked by another rotator,
            4 drift (a node refuses Vault's current key), 5 rotation rolled back,
            6 cluster not safe for a rolling restart;
            audit: 7, 8, 9 the worst finding at or above --fail-on is low, medium, high.
`

// run is the whole program; main only wires the process to it, so tests can call it in-process.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	switch args[0] {
	case "version", "--version":
		fmt.Fprintf(stdout, "rotator %s\n", version)
		return exitOK
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "rotate":
		err = cmdRotate(ctx, args[1:], env, stdout, stderr, logger)
	case "status":
		err = cmdStatus(ctx, args[1:], env, stdout, stderr, logger)
	case "verify":
		err = cmdVerify(ctx, args[1:], env, stdout, stderr, logger)
	case "audit":
		err = cmdAudit(ctx, args[1:], env, stdout, stderr, logger)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "daemon":
		err = cmdDaemon(ctx, args[1:], env, stdout, stderr, logger)
	default:
		fmt.Fprintf(stderr, "rotator: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "rotator %s: %v\n", args[0], err)
	return exitCode(err)
}

func exitCode(err error) int {
	var ue usageError
	var fe *findingsError
	switch {
	case errors.As(err, &fe):
		return fe.exitCode()
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, rotation.ErrLocked):
		return exitLocked
	case errors.Is(err, rotation.ErrDrift):
		return exitDrift
	case errors.Is(err, rotation.ErrRolledBack):
		return exitRolledBack
	case errors.Is(err, rotation.ErrClusterUnsafe):
		return exitUnsafe
	default:
		return exitError
	}
}
