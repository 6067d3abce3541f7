package harness

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/testbed/conformance"
)

// Target runs conformance nodes as containers of an image: the stand-in image, or a real qdrant/qdrant image.
type Target struct {
	h     *Harness
	image string
}

var _ conformance.Target = (*Target)(nil)

// NewTarget returns a conformance target that starts containers of image through h.
func NewTarget(h *Harness, image string) *Target { return &Target{h: h, image: image} }

// Name implements conformance.Target.
func (c *Target) Name() string { return "container " + c.image }

func (c *Target) spec(s conformance.Setup) NodeSpec {
	env := make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	scheme := "http"
	if s.TLS {
		scheme = "https"
	}
	spec := NodeSpec{Image: c.image, Env: env, Args: s.Args, Files: s.Files, Scheme: scheme}
	if s.User == nil && len(s.Owners) == 0 {
		return spec // files copied into the container: root-owned, 0600
	}
	// Files with an owner are mounted from the host, each with its owner and mode (by default the node's user and
	// 0600, so that a node run as another user can read them).
	spec.Files, spec.HostFiles = nil, map[string]HostFile{}
	if s.User != nil {
		spec.User = fmt.Sprintf("%d:%d", s.User.UID, s.User.GID)
	}
	for name, content := range s.Files {
		f := HostFile{Content: content, Mode: 0o600}
		if s.User != nil {
			f.UID, f.GID = s.User.UID, s.User.GID
		}
		if o, ok := s.Owners[name]; ok {
			f.UID, f.GID, f.Mode = o.UID, o.GID, o.Mode
		}
		spec.HostFiles[name] = f
	}
	return spec
}

// Start implements conformance.Target.
func (c *Target) Start(t *testing.T, s conformance.Setup) conformance.Node {
	t.Helper()
	n, err := c.h.StartNode(context.Background(), c.spec(s))
	if err != nil {
		t.Fatalf("start container: %v", err)
	}
	t.Cleanup(func() { _ = c.h.Engine.RemoveContainer(context.Background(), n.ID) })
	return &targetNode{n: n}
}

// StartFailing implements conformance.Target.
func (c *Target) StartFailing(t *testing.T, s conformance.Setup) (int, string) {
	t.Helper()
	ctx := context.Background()
	n, err := c.h.Create(ctx, c.spec(s))
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() { _ = c.h.Engine.RemoveContainer(context.Background(), n.ID) })
	if err := c.h.Engine.StartContainer(ctx, n.ID); err != nil {
		t.Fatalf("start container: %v", err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	code, err := c.h.Engine.WaitExit(waitCtx, n.ID)
	if err != nil {
		t.Fatalf("node was expected to exit by itself: %v", err)
	}
	logs, _ := n.Logs(ctx)
	return code, logs
}

type targetNode struct{ n *Node }

func (tn *targetNode) URL() string { return tn.n.URL }

func (tn *targetNode) Stop(t *testing.T, graceful bool) int {
	t.Helper()
	code, err := tn.n.Stop(context.Background(), graceful)
	if err != nil {
		t.Fatalf("stop node: %v", err)
	}
	return code
}

func (tn *targetNode) Restart(t *testing.T) {
	t.Helper()
	if err := tn.n.Start(context.Background()); err != nil {
		t.Fatalf("restart node: %v", err)
	}
}

func (tn *targetNode) WriteFile(t *testing.T, rel, content string) {
	t.Helper()
	if err := tn.n.WriteFiles(context.Background(), map[string]string{strings.TrimPrefix(rel, "/"): content}); err != nil {
		t.Fatalf("write %s: %v", rel, err)
	}
}

func (tn *targetNode) Logs() string {
	logs, err := tn.n.Logs(context.Background())
	if err != nil {
		return fmt.Sprintf("(logs unavailable: %v)", err)
	}
	return logs
}
