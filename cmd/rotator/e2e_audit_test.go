package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/posture"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/harness"
)

// TestAudit runs `rotator audit` against the real Vault dev server and Docker: deployment e2e is a file-mode node
// whose local.yaml is 0644; deployment copy is an env-mode node holding the same key, both with their ports
// published on 127.0.0.1 only. The review must find the config file readable by others, the keys in the
// environment and the key shared by the two deployments, and nothing published beyond loopback; no key may appear
// in its text or JSON output; --fail-on sets the exit code from the worst finding at or above it.
func TestAudit(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 1, mode: "file", fileMode: 0o644})
	name := "qdrant-audit-" + randomHex(3)
	f.h.StartNodeT(t, harness.NodeSpec{Name: name, Image: f.h.StandinImageT(t),
		Env: []string{"QDRANT__SERVICE__API_KEY=" + f.k1.Reveal()}, Binds: []string{t.TempDir() + ":/qdrant/storage"}})
	if _, err := f.store.Publish(context.Background(), "copy", rotation.SlotAdmin, rotation.KeyRecord{Key: f.k1, Since: time.Now(), RotationID: "adopted"}, 0); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf("  - name: copy\n    mode: env\n    containers: [%s]\n", name)...)
	if err := os.WriteFile(f.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	code, out := f.rotator("audit", "--output", "json", "--fail-on", "high")
	if code != exitFindingHigh {
		t.Fatalf("audit --fail-on high exited %d, want %d:\n%s", code, exitFindingHigh, out)
	}
	var findings []posture.Finding
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&findings); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	has := func(dep, node, check string) bool {
		for _, x := range findings {
			if x.Deployment == dep && x.Node == node && x.Check == check {
				return true
			}
		}
		return false
	}
	for _, want := range []struct{ dep, node, check string }{
		{"e2e", f.names[0], posture.CheckFileOthers},
		{"copy", name, posture.CheckEnvKeys},
		{"e2e", "", posture.CheckDuplicateKey},
		{"copy", "", posture.CheckDuplicateKey},
	} {
		if !has(want.dep, want.node, want.check) {
			t.Errorf("no %s finding for %s %s:\n%s", want.check, want.dep, want.node, out)
		}
	}
	for _, x := range findings {
		if x.Check == posture.CheckPublished || x.Check == posture.CheckTLSOff || x.Check == posture.CheckOpen || x.Check == posture.CheckNoAPIKey {
			t.Errorf("unexpected finding %+v", x)
		}
		if x.Evidence == "" || x.Practice == "" || x.Fix == "" {
			t.Errorf("finding without evidence, practice or fix: %+v", x)
		}
	}
	if has("e2e", f.names[0], posture.CheckEnvKeys) || has("copy", name, posture.CheckFileOthers) {
		t.Errorf("a finding on the wrong node:\n%s", out)
	}
	t.Logf("%d findings:\n%s", len(findings), out)

	// Text output, one block per finding; --deployment still compares keys with every deployment.
	code, out = f.rotator("audit", "--deployment", "copy", "--fail-on", "medium")
	if code != exitFindingHigh || !strings.Contains(out, "[medium] keys_in_environment") || !strings.Contains(out, "[high] same_key_in_two_deployments") ||
		strings.Contains(out, f.names[0]) {
		t.Fatalf("audit --deployment copy exited %d:\n%s", code, out)
	}
	// Bad flag values name the flag.
	if code, out = f.rotator("audit", "--fail-on", "critical"); code != exitUsage || !strings.Contains(out, "--fail-on") {
		t.Fatalf("--fail-on critical exited %d:\n%s", code, out)
	}
	f.assertNoLeak()
}
