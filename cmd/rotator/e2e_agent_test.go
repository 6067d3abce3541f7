package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/testbed/wait"
)

// TestVaultAgentConsumerSeesNoRejection: the shipped setup script and policies on the dev server, the rotator
// logging in with its own AppRole (its policy is enough for a whole rotation), a consumer AppRole,
// the real `vault agent` with the shipped env-file template (render interval 2s) and a rotation whose grace (4s)
// covers the configured lag: the file re-renders to the new key before the grace ends, and a prober that reads the
// rendered file before every request sees zero rejections through the whole rotation.
func TestVaultAgentConsumerSeesNoRejection(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "file", grace: "4s",
		extra: "    consumers:\n      agent: {render_interval: 2s, reload: 1s}\n"})
	secrets := t.TempDir()
	setup := exec.Command("bash", filepath.Join("..", "..", "deploy", "vault", "setup.sh"), "--secret-dir", secrets,
		"--deployment", deployment, "--consumer", "app:admin")
	setup.Env = append([]string{"PATH=" + filepath.Dir(f.vault.Bin) + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, f.vault.Env()...)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	// The rotator itself logs in with the AppRole setup.sh made for it: its policy must be enough for a rotation.
	cfgText, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	rotatorRole := filepath.Join(secrets, "qdrant-rotator")
	approle := "approle: {role_id_file: " + filepath.Join(rotatorRole, "role_id") + ", secret_id_file: " + filepath.Join(rotatorRole, "secret_id") + "}"
	if err := os.WriteFile(f.config, []byte(strings.Replace(string(cfgText), "token_file: token", approle, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "deploy", "vault-agent", "env-file", "agent.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	hcl := strings.NewReplacer("@VAULT_ADDR@", f.vault.Addr, "@APPROLE_DIR@", filepath.Join(secrets, "app"), "@DEPLOYMENT@", deployment,
		"@RECORD@", "admin", "@OUTPUT_DIR@", out, "@QDRANT_HOST@", "127.0.0.1", "@QDRANT_PORT@", "6333",
		`static_secret_render_interval = "30s"`, `static_secret_render_interval = "2s"`).Replace(string(tmpl))
	cfg := filepath.Join(t.TempDir(), "agent.hcl")
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(f.vault.Bin, "agent", "-config="+cfg)
	agent.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var agentOut strings.Builder
	agent.Stdout, agent.Stderr = &agentOut, &agentOut
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })

	envFile := filepath.Join(out, "qdrant.env")
	readKey := func() (string, error) {
		data, err := os.ReadFile(envFile)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "QDRANT_API_KEY="); ok {
				return v, nil
			}
		}
		return "", os.ErrNotExist
	}
	wait.Until(t, "vault agent to render the key", 20*time.Second, func() (bool, error) {
		k, err := readKey()
		return err == nil && k == f.k1.Reveal(), err
	})

	// The prober holds what the file says; note when the file first shows the new key.
	var mu sync.Mutex
	var changedAt time.Time
	p := f.startProberWith(func(context.Context) (string, error) {
		k, err := readKey()
		mu.Lock()
		if err == nil && k != f.k1.Reveal() && changedAt.IsZero() {
			changedAt = time.Now()
		}
		mu.Unlock()
		return k, err
	})
	code, outText := f.rotator("rotate")
	res := p.Stop()
	if code != exitOK {
		t.Fatalf("rotate exited %d:\n%s", code, outText)
	}
	cur := f.current()
	mu.Lock()
	lag := changedAt.Sub(cur.Since)
	mu.Unlock()
	t.Logf("render lag: the file showed the new key %.2fs after it was published (interval 2s, grace 4s); prober: %s", lag.Seconds(), res)
	if changedAt.IsZero() || lag > 4*time.Second {
		t.Errorf("the file did not re-render within the grace (lag %s)", lag)
	}
	if res.Rejected != 0 || res.Accepted < 20 {
		t.Errorf("prober reading the rendered file: %s; rejections %v", res, res.Rejections)
	}
	if k, _ := readKey(); k != cur.Key.Reveal() {
		t.Error("the rendered file does not hold Vault's current key")
	}
	if strings.Contains(agentOut.String(), cur.Key.Reveal()) || strings.Contains(agentOut.String(), f.k1.Reveal()) {
		t.Error("vault agent's output shows a key")
	}
}
