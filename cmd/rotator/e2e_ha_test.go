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
	"github.com/qdrantrotator/rotator/testbed/syncbuf"
)

// daemonProcess is `rotator daemon` as a separate process, so it can be killed.
type daemonProcess struct {
	*daemonUnderTest
	cmd *exec.Cmd
}

func buildRotator(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rotator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build rotator: %v\n%s", err, out)
	}
	return bin
}

func startDaemonProcess(t *testing.T, bin string, f *fixture) *daemonProcess {
	t.Helper()
	addr := freeAddr(t)
	out := &syncbuf.Buffer{}
	cmd := exec.Command(bin, "daemon", "--config", f.config, "--listen", addr)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		_ = cmd.Wait()
		done <- cmd.ProcessState.ExitCode()
	}()
	p := &daemonProcess{daemonUnderTest: &daemonUnderTest{url: "http://" + addr, out: out, done: done}, cmd: cmd}
	p.cancel = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		f.mu.Lock()
		f.outputs.WriteString(out.String())
		f.mu.Unlock()
	})
	p.waitHealthy(t)
	return p
}

// waitPhase polls a run until it reaches phase (or ends).
func (d *daemonUnderTest) waitPhase(t *testing.T, token, id string, phase rotation.Phase) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var run rotation.Run
		d.request(t, http.MethodGet, "/v1/rotations/"+id, token, "", &run)
		if run.Phase == phase {
			return
		}
		if run.State != rotation.RunRunning {
			t.Fatalf("run ended %s before phase %s", run.State, phase)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("run %s never reached phase %s", id, phase)
}

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
	a := startDaemonProcess(t, bin, f)
	b := startDaemonProcess(t, bin, f)
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
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		j := f.journal()
		if resumedAt.IsZero() && j.Owner != "" && !strings.Contains(a.out.String(), j.Owner) && j.UpdatedAt.After(killed) {
			resumedAt = time.Now()
		}
		if j.Phase == rotation.PhaseDone {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	done := time.Since(killed)
	res := p.Stop()
	if j := f.journal(); j.Phase != rotation.PhaseDone {
		t.Fatalf("daemon B did not complete the rotation: journal phase %s\n%s", j.Phase, b.out.String())
	}
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
	a := startDaemonProcess(t, bin, f)
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
	startDaemonProcess(t, bin, f)
	deadline := time.Now().Add(60 * time.Second)
	for f.journal().Phase != rotation.PhaseDone && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if j := f.journal(); j.Phase != rotation.PhaseDone || f.current().Version != 2 {
		t.Fatalf("restarted daemon left phase %s, Vault version %d", j.Phase, f.current().Version)
	}
	f.assertKeys(f.current().Key, f.k1)
}

// TestDaemonVaultSealedMidRotation: Vault is sealed during the grace period and unsealed a little later; the daemon
// backs off and completes; nothing is lost and nothing rotated twice.
func TestDaemonVaultSealedMidRotation(t *testing.T) {
	f, token := haFixture(t)
	d := startDaemon(t, f, nil)
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
