package qdrantctl_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/qdrantctl"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
	"github.com/qdrantrotator/rotator/testbed/harness"
)

// TestNodeKeepsTheContract runs the Node contract the rotator's fake also passes against qdrantctl nodes on stand-in
// containers, in both modes: keys in the container's environment (Apply recreates the container) and keys in a
// local.yaml bind-mounted from the host (Apply rewrites it and restarts).
func TestNodeKeepsTheContract(t *testing.T) {
	h := harness.NewT(t)
	image := h.StandinImageT(t)
	start := func(t *testing.T, spec harness.NodeSpec, opt qdrantctl.NodeOptions) rotationtest.NodeUnderTest {
		t.Helper()
		spec.Image = image
		c := h.StartNodeT(t, spec)
		t.Cleanup(func() { _, _ = c.Stop(context.Background(), false) })
		opt.Container, opt.StopTimeout = c.Name, 5*time.Second
		n, err := qdrantctl.NewNode(h.Engine.Engine, opt)
		if err != nil {
			t.Fatal(err)
		}
		return rotationtest.NodeUnderTest{Node: n, Stop: func(t *testing.T) {
			if _, err := c.Stop(context.Background(), true); err != nil {
				t.Fatal(err)
			}
		}}
	}
	t.Run("env", func(t *testing.T) {
		rotationtest.RunNodeContract(t, func(t *testing.T, s rotation.Slots) rotationtest.NodeUnderTest {
			// Storage on a bind mount, as a recreated container must have it.
			spec := harness.NodeSpec{Env: envOf(s), Binds: []string{t.TempDir() + ":/qdrant/storage"}}
			return start(t, spec, qdrantctl.NodeOptions{Mode: qdrantctl.ModeEnv})
		})
	})
	t.Run("file", func(t *testing.T) {
		rotationtest.RunNodeContract(t, func(t *testing.T, s rotation.Slots) rotationtest.NodeUnderTest {
			spec := harness.NodeSpec{HostFiles: map[string]harness.HostFile{"config/local.yaml": {Content: yamlOf(s), Mode: 0o644}}}
			return start(t, spec, qdrantctl.NodeOptions{Mode: qdrantctl.ModeFile, ConfigPath: "/qdrant/config/local.yaml"})
		})
	})
}

// envOf sets the slots as an operator's `docker run -e` would.
func envOf(s rotation.Slots) []string {
	var env []string
	for name, k := range map[string]rotation.Key{"API_KEY": s.APIKey, "ALT_API_KEY": s.AltAPIKey, "READ_ONLY_API_KEY": s.ReadOnlyKey} {
		if !k.IsZero() {
			env = append(env, "QDRANT__SERVICE__"+name+"="+k.Reveal())
		}
	}
	if s.JWTRBAC {
		env = append(env, "QDRANT__SERVICE__JWT_RBAC=true")
	}
	return env
}

// yamlOf writes the slots as an operator's local.yaml would.
func yamlOf(s rotation.Slots) string {
	var b strings.Builder
	b.WriteString("# written by hand\nlog_level: INFO\nservice:\n  http_port: 6333\n")
	for name, k := range map[string]rotation.Key{"api_key": s.APIKey, "alt_api_key": s.AltAPIKey, "read_only_api_key": s.ReadOnlyKey} {
		if !k.IsZero() {
			b.WriteString("  " + name + ": " + k.Reveal() + "\n")
		}
	}
	if s.JWTRBAC {
		b.WriteString("  jwt_rbac: true\n")
	}
	return b.String()
}
