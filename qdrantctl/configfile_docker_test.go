package qdrantctl_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/qdrantctl"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/harness"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// TestFileModeChecksTheContainerUserCanRead runs a stand-in node as 1000:1000 with its local.yaml bind-mounted
// from the host: Apply rewrites the file (owner and mode kept) while that user can read it, and refuses, leaving it
// as it is, once it belongs to root with mode 0600 (Qdrant would start with no key).
func TestFileModeChecksTheContainerUserCanRead(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test changes file owners and needs root (the test machines run as root)")
	}
	ctx := context.Background()
	k1, _ := rotation.ParseKey("Xq3vN8pLr2Tz5WcYb7HmK4sJd9FgA1eUo6BiE0nRtQy")
	k2, _ := rotation.ParseKey("m_9Qz-Lw2Ex4Rc6Tv8Yb0Nu1Ip3Ao5Sd7Fg9Hj2Kl4Z")
	h := harness.NewT(t)
	content := "# node 0\nservice:\n    api_key: " + k1.Reveal() + "   # admin\n"
	node := h.StartNodeT(t, harness.NodeSpec{Image: h.StandinImageT(t), User: "1000:1000",
		HostFiles: map[string]harness.HostFile{"config/local.yaml": {Content: content, UID: 1000, GID: 1000, Mode: 0o640}}})
	path, ok := node.HostPath("config/local.yaml")
	if !ok {
		t.Fatal("no host path for config/local.yaml")
	}
	n, err := qdrantctl.NewNode(h.Engine.Engine, qdrantctl.NodeOptions{Container: node.Name, Mode: qdrantctl.ModeFile, ConfigPath: "/qdrant/config/local.yaml", StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	if err := n.Apply(ctx, rotation.Slots{APIKey: k1, AltAPIKey: k2}); err != nil {
		t.Fatal(err)
	}
	waitAccepts(t, n, k2)
	data, _ := os.ReadFile(path)
	if want := content + "    alt_api_key: " + k2.Reveal() + "\n"; string(data) != want {
		t.Errorf("staged file\n%q\nwant\n%q", data, want)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode after the write: %v, %v; want 0640", st.Mode().Perm(), err)
	}

	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	err = n.Apply(ctx, rotation.Slots{APIKey: k2})
	if err == nil {
		t.Fatal("Apply rewrote a file the container's user cannot read")
	}
	for _, want := range []string{"node " + node.Name, path, "owner 0:0, mode 0600", `user "1000:1000"`, "chown 1000:1000 " + path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), k1.Reveal()) || strings.Contains(err.Error(), k2.Reveal()) {
		t.Error("the refusal shows a key")
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Errorf("the refused file changed:\n%s", after)
	}
}

// waitAccepts probes until the node accepts key (it restarts after Apply).
func waitAccepts(t *testing.T, n *qdrantctl.Node, key rotation.Key) {
	t.Helper()
	wait.UntilEvery(t, "the node to accept the key", 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		err := n.Probe(context.Background(), key)
		return err == nil, err
	})
}
