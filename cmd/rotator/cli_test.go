package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

// TestBadConfigsAndFlags: each gets a precise error naming the field or flag, and exit code 2. None of these need
// Vault or Docker: they fail before anything is contacted.
func TestBadConfigsAndFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeTestFile(t, dir, name, content) }
	good := "deployments:\n  - name: prod\n    mode: env\n    containers: [a]\n"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no --config", []string{"rotate"}, "--config is required"},
		{"unknown flag", []string{"rotate", "--config", write("a.yml", good), "--frobnicate"}, "flag provided but not defined: -frobnicate"},
		{"bad --output", []string{"verify", "--config", write("b.yml", good), "--output", "xml"}, `--output "xml": want text or json`},
		{"stray argument", []string{"status", "--config", write("c.yml", good), "prod"}, `unexpected argument "prod"`},
		{"missing config file", []string{"rotate", "--config", filepath.Join(dir, "none.yml")}, "none.yml: no such file"},
		{"unknown field", []string{"rotate", "--config", write("d.yml", good+"    colour: blue\n")}, "field colour not found"},
		{"inline secret", []string{"rotate", "--config", write("e.yml", "vault:\n  token: s.abc\n"+good)}, "field token not found"},
		{"bad mode", []string{"rotate", "--config", write("f.yml", strings.Replace(good, "env", "ssh", 1))}, `deployments[0] (prod).mode: "ssh": want env, file or kubernetes`},
		{"check a bad file", []string{"check", "--config", write("i.yml", good+"    grace: -1s\n")}, "deployments[0] (prod).grace: -1s is negative"},
		{"unknown deployment", []string{"rotate", "--config", write("h.yml", good), "--deployment", "staging"}, `no deployment "staging" in the config`},
		{"bad --fail-on", []string{"audit", "--config", write("j.yml", good), "--fail-on", "critical"}, `--fail-on "critical": want low, medium or high`},
		{"bad audit --output", []string{"audit", "--config", write("k.yml", good), "--output", "xml"}, `--output "xml": want text or json`},
		{"audit_interval too short", []string{"check", "--config", write("l.yml", "daemon:\n  audit_interval: 10s\n"+good)}, "daemon.audit_interval: 10s is shorter than 1m"},
		{"bad grace", []string{"rotate", "--config", write("g.yml", good+"    grace: later\n")}, `"later" is not a duration`},
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"check", "--config", write("ok.yml", good)}, func(string) string { return "" }, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "prod: mode env, nodes a") {
		t.Errorf("check of a good file: exit %d, %q %q", code, out.String(), errOut.String())
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, func(string) string { return "" }, &out, &errOut)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", errOut.String(), tc.want)
			}
		})
	}
}

func TestDeploymentNamedOnceInErrors(t *testing.T) {
	drift := &rotation.DriftError{Deployment: "prod", Nodes: map[string]string{"q0": "node q0: key rejected (HTTP 401)"}}
	got := inDeployment("prod", drift).Error()
	if strings.Count(got, "deployment prod") != 1 || strings.Contains(got, "map[") || strings.Count(got, "q0") != 1 {
		t.Errorf("drift error %q: want the deployment and the node named once, no map dump", got)
	}
	if got := inDeployment("prod", errors.New("vault: sealed")).Error(); got != "deployment prod: vault: sealed" {
		t.Errorf("plain error: %q", got)
	}
}

// writeTestFile writes a file of the test's (mode 0600) and returns its path.
func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
