package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

func haFixture(t *testing.T) (*fixture, string) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", grace: "3s", top: `daemon:
  poll_interval: 200ms
  tokens:
    - {name: ops, role: admin, file: admin.token}
`})
	token := randomHex(16)
	if err := os.WriteFile(filepath.Join(f.dir, "admin.token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, token
}

// TestTwoDaemonsTakeOver: two daemons on one Vault. Exactly one rotates (the other's attempt ends "locked"); the
// active one is SIGKILLed mid-rotation; the other takes over once the lease expires and completes it; a prober sees
// zero rejections throughout.
func TestTwoDaemonsTakeOver(t *testing.T) {
	bin := buildRotator(t)
	f, token := haFixture(t)
	a := f.startDaemon(daemonOpts{bin: bin})
	b := f.startDaemon(daemonOpts{bin: bin})
	p := f.startProber()
	post := "/v1/deployments/" + deployment + "/rotations"
	var e struct {
		ID string `json:"id"`
	}
	if code, _ := a.request(t, http.MethodPost, post, token, `{}`, &e); code != 202 {
		t.Fatalf("POST to daemon A: HTTP %d", code)
	}
	a.waitPhase(t, token, e.ID, rotation.PhaseGrace)
	var other struct {
		ID string `json:"id"`
	}
	if code, _ := b.request(t, http.MethodPost, post, token, `{}`, &other); code != 202 {
		t.Fatalf("POST to daemon B: HTTP %d", code)
	}
	if run := b.waitRun(t, token, other.ID); run.State != rotation.RunLocked {
		t.Errorf("daemon B's run while A rotates ended %s, want locked (exactly one rotates)", run.State)
	}
	killed := time.Now()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var resumedAt time.Time
	wait.Until(t, "daemon B to complete the rotation", 60*time.Second, func() (bool, error) {
		j := f.journal()
		if resumedAt.IsZero() && j.Owner != "" && !strings.Contains(a.out.String(), j.Owner) && j.UpdatedAt.After(killed) {
			resumedAt = time.Now()
		}
		return j.Phase == rotation.PhaseDone, fmt.Errorf("journal phase %s; daemon B's output:\n%s", j.Phase, b.out)
	})
	done := time.Since(killed)
	res := p.Stop()
	t.Logf("takeover: B resumed %.1fs after A was killed (lease 3s, poll 0.2s); rotation done %.1fs after; prober: %s",
		resumedAt.Sub(killed).Seconds(), done.Seconds(), res)
	fmt.Printf("HA takeover: resumed %.1fs after SIGKILL (lease_ttl 3s), completed %.1fs after\n", resumedAt.Sub(killed).Seconds(), done.Seconds())
	if res.Rejected != 0 {
		t.Errorf("the prober saw %d rejections: %v", res.Rejected, res.Rejections)
	}
	if v := f.current().Version; v != 2 {
		t.Errorf("Vault version %d, want one rotation (2)", v)
	}
	f.assertKeys(f.current().Key, f.k1)
}

// TestDaemonSIGTERMMidRotationThenRestart: SIGTERM while a rotation runs; the daemon finishes its node step, leaves
// the journal resumable and exits within a bound; restarted, it completes the rotation.
func TestDaemonSIGTERMMidRotationThenRestart(t *testing.T) {
	bin := buildRotator(t)
	f, token := haFixture(t)
	a := f.startDaemon(daemonOpts{bin: bin})
	var e struct {
		ID string `json:"id"`
	}
	if code, _ := a.request(t, http.MethodPost, "/v1/deployments/"+deployment+"/rotations", token, `{}`, &e); code != 202 {
		t.Fatalf("POST: HTTP %d", code)
	}
	a.waitPhase(t, token, e.ID, rotation.PhaseStaging)
	start := time.Now()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case code := <-a.done:
		if code != 0 {
			t.Errorf("daemon exited %d after SIGTERM, want 0", code)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("daemon did not exit within 45s of SIGTERM")
	}
	t.Logf("exited %.1fs after SIGTERM", time.Since(start).Seconds())
	j := f.journal()
	if j.Phase.Final() || j.Owner != "" {
		t.Fatalf("after SIGTERM the journal is %s owned by %q; want an unfinished rotation, unlocked", j.Phase, j.Owner)
	}
	f.assertKeys(f.current().Key) // whatever step it stopped at, Vault's current key works
	f.startDaemon(daemonOpts{bin: bin})
	wait.Until(t, "the restarted daemon to complete the rotation", 60*time.Second, func() (bool, error) {
		j := f.journal()
		return j.Phase == rotation.PhaseDone, fmt.Errorf("journal phase %s", j.Phase)
	})
	if v := f.current().Version; v != 2 {
		t.Fatalf("the restarted daemon completed with Vault version %d, want 2", v)
	}
	f.assertKeys(f.current().Key, f.k1)
}

// TestDaemonVaultSealedMidRotation: Vault is sealed during the grace period and unsealed a little later; the daemon
// backs off and completes; nothing is lost and nothing rotated twice.
func TestDaemonVaultSealedMidRotation(t *testing.T) {
	f, token := haFixture(t)
	d := f.startDaemon(daemonOpts{})
	var e struct {
		ID string `json:"id"`
	}
	if code, _ := d.request(t, http.MethodPost, "/v1/deployments/"+deployment+"/rotations", token, `{}`, &e); code != 202 {
		t.Fatalf("POST: HTTP %d", code)
	}
	d.waitPhase(t, token, e.ID, rotation.PhaseGrace)
	vault := func(args ...string) {
		cmd := exec.Command(f.vault.Bin, args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, f.vault.Env()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("vault %s: %v\n%s", args[1], err, out)
		}
	}
	vault("operator", "seal")
	time.Sleep(4 * time.Second) // past the grace: the rotator needs Vault now
	vault("operator", "unseal", f.vault.UnsealKey)
	run := d.waitRun(t, token, e.ID)
	if run.State != rotation.RunCompleted {
		t.Fatalf("run ended %s: %s", run.State, run.Error)
	}
	if v := f.current().Version; v != 2 {
		t.Errorf("Vault version %d, want 2 (nothing rotated twice)", v)
	}
	f.assertKeys(f.current().Key, f.k1)
}
