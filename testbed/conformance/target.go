// Package conformance holds one suite of Qdrant behaviour facts (../shared/specs/qdrant.md, sections 1-3, 5, 6, 8, 9,
// 11b and the checklist in 12) and runs it against any Target: the stand-in as a plain process, the stand-in image in
// Docker, or a real qdrant/qdrant image named by QDRANT_IMAGE.
package conformance

import (
	"io/fs"
	"testing"
)

// Setup describes how one node is started.
type Setup struct {
	// Env is added to the node's environment (QDRANT__..., RUN_MODE, STANDIN_...).
	Env map[string]string
	// Files are written before start, relative to the node's working directory (Qdrant's image: /qdrant),
	// for example "config/local.yaml". Values are file contents.
	Files map[string]string
	// Args are extra command-line arguments, for example {"--config-path", "custom/extra.yaml"}.
	Args []string
	// TLS says the node serves HTTPS (service.enable_tls is set by the test through Files or Env).
	TLS bool
	// User, when set, runs the node as that user and group (Docker's --user uid:gid). nil keeps the target's
	// default: the image's user (root) in a container, the test's own user for a process. With a User, Files
	// belong to that user and the node can write its storage; running a process as another user needs a test
	// running as root.
	User *UserID
	// Owners gives some of Files (same relative names) another owner and mode than the default (the node's
	// user, 0600), for example a root-owned 0600 config/local.yaml that a node running as uid 1000 cannot read.
	// A container target mounts such files from the host.
	Owners map[string]FileOwner
}

// UserID is a numeric user and group.
type UserID struct{ UID, GID int }

// FileOwner is the owner and the exact permission bits of a file of Setup.Files.
type FileOwner struct {
	UID, GID int
	Mode     fs.FileMode
}

// Target starts nodes of one implementation. Every node it starts is removed when the test ends.
type Target interface {
	Name() string
	// Start starts a node and returns once GET / answers on its REST port.
	Start(t *testing.T, s Setup) Node
	// StartFailing starts a node that must exit by itself (bad config, fault knob) and returns its exit code
	// and combined output; it fails the test if the node is still running after a bound.
	StartFailing(t *testing.T, s Setup) (exitCode int, output string)
}

// Node is one running Qdrant (or stand-in) node.
type Node interface {
	// URL is the REST base URL reachable from the test, e.g. "http://127.0.0.1:41234" (https when Setup.TLS).
	URL() string
	// Stop sends SIGTERM (graceful) or SIGKILL, waits for the process to exit and returns its exit code.
	Stop(t *testing.T, graceful bool) int
	// Restart starts the node again with the same setup and storage, and returns once GET / answers.
	Restart(t *testing.T)
	// WriteFile replaces a file relative to the working directory while the node runs (takes effect on restart).
	WriteFile(t *testing.T, rel, content string)
	// Logs returns what the node printed so far.
	Logs() string
}
