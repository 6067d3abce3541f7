package harness

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

// TestThreeNodesEachAnswerOnlyItsOwnKey starts three stand-in containers on one test network, each with its own key,
// and proves with an authenticated call that each node accepts its key and refuses the other two; then that the
// harness removes everything it made.
func TestThreeNodesEachAnswerOnlyItsOwnKey(t *testing.T) {
	ctx := context.Background()
	h := NewT(t)
	image := h.StandinImageT(t)

	keys := make([]rotation.Key, 3)
	nodes := make([]*Node, 3)
	for i := range nodes {
		k, err := rotation.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		nodes[i] = h.StartNodeT(t, NodeSpec{Image: image, Env: []string{"QDRANT__SERVICE__API_KEY=" + k.Reveal()}})
	}
	for i, n := range nodes {
		if !strings.HasPrefix(n.URL, "http://127.0.0.1:") {
			t.Errorf("node %d URL %q is not on 127.0.0.1", i, n.URL)
		}
		for j, k := range keys {
			status := getCollections(t, n.URL, k.Reveal())
			want := http.StatusUnauthorized
			if i == j {
				want = http.StatusOK
			}
			if status != want {
				t.Errorf("node %d with key of node %d: status %d, want %d", i, j, status, want)
			}
		}
		if status := getCollections(t, n.URL, ""); status != http.StatusUnauthorized {
			t.Errorf("node %d without a key: status %d, want 401", i, status)
		}
	}

	// Closing the harness removes the containers and the network.
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eng := NewT(t).Engine
	left, err := eng.Containers(ctx, Label+"="+h.run)
	if err != nil {
		t.Fatal(err)
	}
	nets, err := eng.Networks(ctx, Label+"="+h.run)
	if err != nil {
		t.Fatal(err)
	}
	if len(left)+len(nets) != 0 {
		t.Errorf("after Close: %d containers and %d networks of the run are left", len(left), len(nets))
	}
}

// TestSweepRemovesLeftoversOfDeadRuns labels a network as made by a process that no longer exists, and makes a host
// folder named after it, and checks that the next harness removes both, while those of live processes stay.
func TestSweepRemovesLeftoversOfDeadRuns(t *testing.T) {
	ctx := context.Background()
	h := NewT(t)
	deadPID := "999999999"
	id, err := h.Engine.CreateNetwork(ctx, "qdrant-testbed-leftover-"+h.run, map[string]string{Label: "crashed", ownerLabel: deadPID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Engine.RemoveNetwork(ctx, id) })
	deadDir := filepath.Join(os.TempDir(), hostDirPrefix+deadPID+"-crashed")
	liveDir := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-live", hostDirPrefix, os.Getpid()))
	for _, d := range []string{deadDir, liveDir} {
		if err := os.MkdirAll(filepath.Join(d, "node", "storage"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	if err := Sweep(ctx, h.Engine, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(deadDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("host folder of a dead process survived the sweep: %v", err)
	}
	if _, err := os.Stat(liveDir); err != nil {
		t.Errorf("host folder of the live process was swept: %v", err)
	}
	if left, _ := h.Engine.Networks(ctx, Label+"=crashed"); len(left) != 0 {
		t.Errorf("leftover network of a dead process survived the sweep")
	}
	if mine, _ := h.Engine.Networks(ctx, Label+"="+h.run); len(mine) != 1 {
		t.Errorf("the live run's network was swept (found %d)", len(mine))
	}
}

func getCollections(t *testing.T, base, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/collections", nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("api-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(fmt.Errorf("GET /collections: %w", err))
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestNonRootNodeWithHostFiles starts stand-in containers as a user other than root with local.yaml mounted from
// the host. Owned by that user (0600) the file is read, so its key is enforced, and the node writes its storage
// (a collection survives a restart); WriteFiles rewrites the host file in place (a new key after the restart).
// Owned by root (0600), the node cannot read it and starts with no key at all (qdrant.md §2). Close removes the
// host folders.
func TestNonRootNodeWithHostFiles(t *testing.T) {
	ctx := context.Background()
	h := NewT(t)
	image := h.StandinImageT(t)
	// As root the nodes run as 1000:1000, like Qdrant's -unprivileged image and Helm chart; otherwise as the test's
	// own user, for whom a file of mode 0000 is as unreadable as a root-owned one.
	uid, gid := 1000, 1000
	unreadable := HostFile{UID: 0, GID: 0, Mode: 0o600}
	if os.Geteuid() != 0 {
		uid, gid = os.Geteuid(), os.Getegid()
		unreadable = HostFile{UID: uid, GID: gid, Mode: 0}
	}
	user := fmt.Sprintf("%d:%d", uid, gid)
	k1, k2 := newTestKey(t), newTestKey(t)
	keyFile := func(k rotation.Key) string { return "service:\n  api_key: " + k.Reveal() + "\n" }

	n := h.StartNodeT(t, NodeSpec{Image: image, User: user, HostFiles: map[string]HostFile{
		"config/local.yaml": {Content: keyFile(k1), UID: uid, GID: gid, Mode: 0o600},
	}})
	if status := getCollections(t, n.URL, ""); status != http.StatusUnauthorized {
		t.Errorf("no key on a node that reads its local.yaml: status %d, want 401", status)
	}
	if status := send(t, http.MethodPut, n.URL+"/collections/kept", k1.Reveal(), `{"vectors":{"size":4,"distance":"Cosine"}}`); status != http.StatusOK {
		t.Fatalf("create a collection as uid %d: status %d, want 200 (storage not writable?)", uid, status)
	}
	hostPath, ok := n.HostPath("config/local.yaml")
	if !ok {
		t.Fatal("HostPath does not know config/local.yaml")
	}
	before := statOwner(t, hostPath)
	if before.uid != uid || before.gid != gid || before.mode != 0o600 {
		t.Errorf("host file: owner %d:%d mode %o, want %d:%d 600", before.uid, before.gid, before.mode, uid, gid)
	}

	if err := n.WriteFiles(ctx, map[string]string{"config/local.yaml": keyFile(k2)}); err != nil {
		t.Fatal(err)
	}
	if after := statOwner(t, hostPath); after != before {
		t.Errorf("host file after WriteFiles: %+v, want the same inode, owner and mode %+v", after, before)
	}
	if _, err := n.Stop(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if status := getCollections(t, n.URL, k2.Reveal()); status != http.StatusOK {
		t.Errorf("new key after WriteFiles and restart: status %d, want 200", status)
	}
	if status := getCollections(t, n.URL, k1.Reveal()); status != http.StatusUnauthorized {
		t.Errorf("old key after WriteFiles and restart: status %d, want 401", status)
	}
	if status := send(t, http.MethodGet, n.URL+"/collections/kept", k2.Reveal(), ""); status != http.StatusOK {
		t.Errorf("collection after restart: status %d, want 200", status)
	}

	unreadable.Content = keyFile(k1)
	open := h.StartNodeT(t, NodeSpec{Image: image, User: user, HostFiles: map[string]HostFile{"config/local.yaml": unreadable}})
	for _, key := range []string{"", newTestKey(t).Reveal()} {
		if status := getCollections(t, open.URL, key); status != http.StatusOK {
			t.Errorf("node that cannot read its local.yaml, key given %t: status %d, want 200 (no API key)", key != "", status)
		}
	}

	dir := h.hostDir
	if dir == "" {
		t.Fatal("the harness made no host folder")
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("host folder %s after Close: %v, want it removed", dir, err)
	}
}

type fileOwner struct {
	ino      uint64
	uid, gid int
	mode     fs.FileMode
}

func statOwner(t *testing.T, p string) fileOwner {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return fileOwner{ino: sys.Ino, uid: int(sys.Uid), gid: int(sys.Gid), mode: st.Mode().Perm()}
}

func newTestKey(t *testing.T) rotation.Key {
	t.Helper()
	k, err := rotation.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// send makes one request with an api-key header (none if key is empty) and returns the status.
func send(t *testing.T, method, url, key, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("api-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(fmt.Errorf("%s %s: %w", method, url, err))
	}
	resp.Body.Close()
	return resp.StatusCode
}
