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

	"github.com/qdrantrotator/rotator/testbed/syncbuf"
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
	agent := f.startVaultAgent("2s")
	// The rotator itself logs in with the AppRole setup.sh made for it: its policy must be enough for a rotation.
	cfgText, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	rotatorRole := filepath.Join(agent.secrets, "qdrant-rotator")
	approle := "approle: {role_id_file: " + filepath.Join(rotatorRole, "role_id") + ", secret_id_file: " + filepath.Join(rotatorRole, "secret_id") + "}"
	if err := os.WriteFile(f.config, []byte(strings.Replace(string(cfgText), "token_file: token", approle, 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	// The prober holds what the file says; note when the file first shows the new key.
	var mu sync.Mutex
	var changedAt time.Time
	p := f.startProberWith(func(context.Context) (string, error) {
		k, err := agent.readKey()
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
	if k, _ := agent.readKey(); k != cur.Key.Reveal() {
		t.Error("the rendered file does not hold Vault's current key")
	}
	if out := agent.out.String(); strings.Contains(out, cur.Key.Reveal()) || strings.Contains(out, f.k1.Reveal()) {
		t.Error("vault agent's output shows a key")
	}
}

// vaultAgent is a real `vault agent` rendering the deployment's admin record into an env file with the shipped
// env-file template, logged in with a consumer AppRole that the shipped setup script made.
type vaultAgent struct {
	// secrets is the folder setup.sh wrote the AppRoles' role_id and secret_id to (qdrant-rotator/, app/).
	secrets string
	// envFile is the rendered file (QDRANT_API_KEY=...).
	envFile string
	out     *syncbuf.Buffer
}

// startVaultAgent runs deploy/vault/setup.sh on the fixture's Vault (a consumer "app" reading the admin record), then
// `vault agent` with deploy/vault-agent/env-file/agent.hcl at the given static_secret_render_interval, and waits
// until the file holds the fixture's key. The agent is killed when the test ends.
func (f *fixture) startVaultAgent(renderInterval string) *vaultAgent {
	t := f.t
	t.Helper()
	a := &vaultAgent{secrets: t.TempDir(), out: &syncbuf.Buffer{}}
	setup := exec.Command("bash", filepath.Join("..", "..", "deploy", "vault", "setup.sh"), "--secret-dir", a.secrets,
		"--deployment", deployment, "--consumer", "app:admin")
	setup.Env = append([]string{"PATH=" + filepath.Dir(f.vault.Bin) + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, f.vault.Env()...)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "deploy", "vault-agent", "env-file", "agent.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	hcl := strings.NewReplacer("@VAULT_ADDR@", f.vault.Addr, "@APPROLE_DIR@", filepath.Join(a.secrets, "app"), "@DEPLOYMENT@", deployment,
		"@RECORD@", "admin", "@OUTPUT_DIR@", out, "@QDRANT_HOST@", "127.0.0.1", "@QDRANT_PORT@", "6333",
		`static_secret_render_interval = "30s"`, `static_secret_render_interval = "`+renderInterval+`"`).Replace(string(tmpl))
	cfg := filepath.Join(t.TempDir(), "agent.hcl")
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(f.vault.Bin, "agent", "-config="+cfg)
	agent.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	agent.Stdout, agent.Stderr = a.out, a.out
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	a.envFile = filepath.Join(out, "qdrant.env")
	wait.Until(t, "vault agent to render the key", 20*time.Second, func() (bool, error) {
		k, err := a.readKey()
		return err == nil && k == f.k1.Reveal(), err
	})
	return a
}

// readKey reads the key the rendered file holds now.
func (a *vaultAgent) readKey() (string, error) {
	data, err := os.ReadFile(a.envFile)
	if err != nil {
		return "", err
	}
	return envFileKey(data)
}

// envFileKey is the QDRANT_API_KEY of an env file the env-file template rendered.
func envFileKey(data []byte) (string, error) {
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "QDRANT_API_KEY="); ok {
			return v, nil
		}
	}
	return "", os.ErrNotExist
}
