package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/harness"
)

// hostConfigFiles returns, per node, the host file mounted at /qdrant/config/local.yaml.
func (f *fixture) hostConfigFiles() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for _, name := range f.names {
		info, err := f.h.Engine.Inspect(context.Background(), name)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, m := range info.Mounts {
			if m.Destination == "/qdrant/config/local.yaml" {
				out[name] = m.Source
			}
		}
	}
	return out
}

// TestNonRootNodeKeepsItsOperatorsFile: Qdrant runs as uid 1000 and reads a root-owned 0644 local.yaml the operator
// wrote. A rotation keeps the file's owner and mode (so the node can still read it), the node never starts open,
// and clients never see a rejection.
func TestNonRootNodeKeepsItsOperatorsFile(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "file", user: "1000:1000", fileMode: 0o644})
	p := f.startProber()
	code, out := f.rotator("rotate")
	res := p.Stop()
	if code != exitOK {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	if res.Rejected != 0 {
		t.Errorf("the prober saw %d rejections: %v", res.Rejected, res.Rejections)
	}
	for name, path := range f.hostConfigFiles() {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode().Perm() != 0o644 || sys.Uid != 0 || sys.Gid != 0 {
			t.Errorf("%s: %s is now %d:%d mode %04o, want root:root 0644 as the operator left it", name, path, sys.Uid, sys.Gid, st.Mode().Perm())
		}
	}
	stranger, _ := rotation.NewKey()
	f.assertKeys(f.current().Key, f.k1, stranger)
	if code, out := f.rotator("verify"); code != exitOK || !strings.Contains(out, "refuses a key never issued") {
		t.Errorf("verify exited %d:\n%s", code, out)
	}
}

// TestOpenNodeIsNamedAndNothingChanges: a node running as uid 1000 cannot read its root-owned 0600 local.yaml, so
// (as real Qdrant does) it starts with no key and accepts every request. rotate and verify report it open, with the
// likely cause and the node's log, exit 4, and change nothing.
func TestOpenNodeIsNamedAndNothingChanges(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "file", user: "1000:1000", fileMode: 0o600})
	before := map[string][]byte{}
	for name, path := range f.hostConfigFiles() {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = b
	}
	for _, cmd := range []string{"rotate", "verify"} {
		code, out := f.rotator(cmd)
		if code != exitDrift || !strings.Contains(out, f.names[0]+" is open") && !strings.Contains(out, "OPEN") {
			t.Errorf("%s exited %d, want %d naming %s open:\n%s", cmd, code, exitDrift, f.names[0], out)
		}
		if !strings.Contains(out, "cannot be read by the container's user") {
			t.Errorf("%s does not give the likely cause (the unreadable file):\n%s", cmd, out)
		}
	}
	if cur := f.current(); cur.Version != 1 {
		t.Errorf("Vault moved to version %d", cur.Version)
	}
	for name, path := range f.hostConfigFiles() {
		if b, _ := os.ReadFile(path); !bytes.Equal(b, before[name]) {
			t.Errorf("%s: %s was changed", name, path)
		}
	}
	f.assertNoLeak(f.k1)
}

// TestNodeThatWillNotStartIsRestoredExactly: a node that refuses to start with its rewritten file is rolled back:
// its file is restored byte for byte, it is started again and accepts the current key, the command exits 5 and
// quotes the node's own log line.
func TestNodeThatWillNotStartIsRestoredExactly(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "file", env: map[int][]string{1: {"STANDIN_FAIL_IF_SET=service.alt_api_key"}}})
	files := f.hostConfigFiles()
	before := map[string][]byte{}
	for name, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = b
	}
	code, out := f.rotator("rotate")
	if code != exitRolledBack {
		t.Fatalf("rotate exited %d, want %d:\n%s", code, exitRolledBack, out)
	}
	if !strings.Contains(out, "refusing to start: service.alt_api_key is set") {
		t.Errorf("the output does not quote the node's log line:\n%s", out)
	}
	for name, path := range files {
		if b, _ := os.ReadFile(path); !bytes.Equal(b, before[name]) {
			t.Errorf("%s: %s is not restored byte for byte:\n%s\nwas:\n%s", name, path, b, before[name])
		}
	}
	stranger, _ := rotation.NewKey()
	f.assertKeys(f.k1, f.journal().PendingKey, stranger)
	if code, out := f.rotator("verify"); code != exitOK {
		t.Errorf("verify after the rollback exited %d:\n%s", code, out)
	}
}

// TestFingerprintIsTheSameFromTheFirstCommand: on a fresh Vault (no fingerprint secret yet), status, a dry run,
// verify and the rotation that follows all name the current key by the same fingerprint.
func TestFingerprintIsTheSameFromTheFirstCommand(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 1, mode: "env"})
	fp := regexp.MustCompile(`fp:[0-9a-f]{16}`)
	var seen []string
	for _, args := range [][]string{{"status"}, {"rotate", "--dry-run"}, {"verify"}} {
		code, out := f.rotator(args...)
		if code != exitOK {
			t.Fatalf("%v exited %d:\n%s", args, code, out)
		}
		seen = append(seen, fp.FindString(out))
	}
	code, out := f.rotator("rotate", "--output", "json")
	if code != exitOK {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	var doc struct {
		Results []struct {
			Report rotation.Report `json:"report"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Results) != 1 {
		t.Fatalf("rotate --output json: %v\n%s", err, out)
	}
	seen = append(seen, doc.Results[0].Report.OldFingerprint)
	for _, s := range seen {
		if s == "" || s != seen[0] {
			t.Fatalf("fingerprints of the same key by status, dry run, verify, rotation: %v", seen)
		}
	}
}

// TestContainerInTwoDeploymentsIsRefused: a second deployment selects, by label, a container the first lists.
// Rotating either would lock the other's clients out, so both are refused (exit 2) and nothing changes.
func TestContainerInTwoDeploymentsIsRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 1, mode: "env"})
	info, err := f.h.Engine.Inspect(context.Background(), f.names[0])
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	extra := "  - name: other\n    mode: env\n    label: " + harness.Label + "=" + info.Labels[harness.Label] + "\n"
	if err := os.WriteFile(f.config, append(cfg, []byte(extra)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dep := range []string{deployment, "other"} {
		code, out := f.rotator("rotate", "--deployment", dep)
		if code != exitUsage || !strings.Contains(out, "belongs to deployments") || !strings.Contains(out, f.names[0]) {
			t.Errorf("rotate --deployment %s exited %d, want %d naming the shared container:\n%s", dep, code, exitUsage, out)
		}
	}
	if cur := f.current(); cur.Version != 1 {
		t.Errorf("Vault moved to version %d", cur.Version)
	}
}
