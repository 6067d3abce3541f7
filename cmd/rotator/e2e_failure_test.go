package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// TestRollbackWhenANodeRefusesToStart: the middle node refuses to start once alt_api_key is set (a stand-in fault
// knob). The rotation rolls back: every node accepts the old key, Vault's consumer record is unchanged, and the
// journal says rolled back and why.
func TestRollbackWhenANodeRefusesToStart(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 3, mode: "env", env: map[int][]string{1: {"STANDIN_FAIL_IF_SET=service.alt_api_key"}}})
	p := f.startProber()
	code, out := f.rotator("rotate")
	res := p.Stop()
	if code != exitRolledBack {
		t.Fatalf("rotate exited %d, want %d (rolled back):\n%s", code, exitRolledBack, out)
	}
	if res.Rejected != 0 {
		t.Errorf("the prober saw %d rejections: %v", res.Rejected, res.Rejections)
	}
	cur := f.current()
	if cur.Version != 1 || !cur.Key.Equal(f.k1) {
		t.Errorf("Vault's consumer record moved to version %d", cur.Version)
	}
	j := f.journal()
	if j.Phase != rotation.PhaseRolledBack || !strings.Contains(j.Error, f.names[1]) || !strings.Contains(j.Error, "not running") {
		t.Errorf("journal phase %s error %q; want rolled_back naming %s and why", j.Phase, j.Error, f.names[1])
	}
	f.assertKeys(f.k1, j.PendingKey)
	if code, out := f.rotator("verify"); code != exitOK {
		t.Errorf("verify after rollback exited %d:\n%s", code, out)
	}
	f.assertNoLeak(j.PendingKey)
}

// TestEmergencyAndDryRunAndAdopt: a dry run changes nothing; adopt imports the nodes' key; an emergency rotation
// leaves the old key refused everywhere and the new one published.
func TestEmergencyAndDryRunAndAdopt(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "file", noPublish: true})
	if code, out := f.rotator("rotate", "--dry-run"); code != exitError || !strings.Contains(out, "--adopt") && !strings.Contains(out, "adopt") {
		t.Errorf("dry run without a key in Vault exited %d, want %d with a hint to adopt:\n%s", code, exitError, out)
	}
	code, out := f.rotator("rotate", "--dry-run", "--adopt", "--emergency")
	if code != exitOK || !strings.Contains(out, "cutting") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("dry run exited %d:\n%s", code, out)
	}
	if _, err := f.store.ReadCurrent(context.Background(), deployment, rotation.SlotAdmin); !errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("the dry run wrote to Vault: %v", err)
	}
	code, out = f.rotator("rotate", "--adopt", "--emergency", "--output", "json")
	if code != exitOK {
		t.Fatalf("emergency rotation exited %d:\n%s", code, out)
	}
	var doc struct {
		Results []struct {
			Report rotation.Report `json:"report"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Results) != 1 {
		t.Fatalf("--output json is not one JSON document with one result: %v\n%s", err, out)
	}
	rep := doc.Results[0].Report
	if !rep.Adopted || rep.Kind != rotation.KindEmergency || rep.Outcome != rotation.OutcomeCompleted || rep.Restarts != 2 {
		t.Errorf("report %+v", rep)
	}
	cur := f.current()
	if cur.Version != 2 || cur.Key.Equal(f.k1) {
		t.Errorf("current version %d; want the adopted key at 1 and the new one at 2", cur.Version)
	}
	f.assertKeys(cur.Key, f.k1)
	code, out = f.rotator("status", "--output", "json")
	if code != exitOK || !strings.Contains(out, `"journal_phase": "done"`) || !strings.Contains(out, cur.Fingerprint) {
		t.Errorf("status exited %d:\n%s", code, out)
	}
	f.assertNoLeak(cur.Key)
}

// TestTwoRotatorsAtOnce: exactly one proceeds; the other exits with a clear "locked" error.
func TestTwoRotatorsAtOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env"})
	var wg sync.WaitGroup
	codes := make([]int, 2)
	outs := make([]string, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				time.Sleep(500 * time.Millisecond) // the first is well into its rotation (grace 1s, restarts)
			}
			codes[i], outs[i] = f.rotator("rotate")
		}()
	}
	wg.Wait()
	if codes[0] != exitOK {
		t.Errorf("first rotator exited %d:\n%s", codes[0], outs[0])
	}
	if codes[1] != exitLocked || !strings.Contains(outs[1], "locked by another rotator") {
		t.Errorf("second rotator exited %d, want %d with a locked message:\n%s", codes[1], exitLocked, outs[1])
	}
	if v := f.current().Version; v != 2 {
		t.Errorf("Vault version %d, want exactly one rotation (2)", v)
	}
}

// TestCrashAtEveryPhaseBoundary kills the rotator process (SIGKILL) at each phase boundary, then runs it again:
// each rerun ends completed, and a prober checks all along that Vault's current key works on every running node.
func TestCrashAtEveryPhaseBoundary(t *testing.T) {
	bin := buildRotator(t)
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env"})
	n0, n1 := f.names[0], f.names[1]
	points := []string{
		"minted",
		"stage:" + n0 + ":begin", "stage:" + n0 + ":done", "stage:" + n1 + ":begin", "staged",
		"published", "grace",
		"promote:" + n0 + ":begin", "promote:" + n1 + ":done", "promoted",
		"retired",
	}
	p := f.startProber()
	defer p.Stop()
	exe := func(env ...string) (int, string) { return f.runRotatorProcess(bin, env...) }
	version := 1
	for _, point := range points {
		code, out := exe(crashHookEnv + "=" + point)
		if code != -int(syscall.SIGKILL) {
			t.Fatalf("crash at %s: the rotator exited %d instead of being killed:\n%s", point, code, out)
		}
		// Rerun until the dead rotator's lease (3s) has expired and the rotation is finished.
		wait.UntilEvery(t, "a rerun after a crash at "+point+" not to find the journal locked", 30*time.Second, 500*time.Millisecond, func() (bool, error) {
			code, out = exe()
			return code != exitLocked, nil
		})
		if code != exitOK {
			t.Fatalf("rerun after a crash at %s exited %d:\n%s", point, code, out)
		}
		if point != "retired" && !strings.Contains(out, "resumed") {
			t.Errorf("rerun after a crash at %s did not resume the interrupted rotation:\n%s", point, out)
		}
		version++
		if point == "retired" {
			version++ // the crash came after the rotation was complete; the rerun made a rotation of its own
		}
		cur := f.current()
		if cur.Version != version {
			t.Errorf("after a crash at %s: Vault version %d, want %d", point, cur.Version, version)
		}
		if j := f.journal(); j.Phase != rotation.PhaseDone {
			t.Errorf("after a crash at %s: journal phase %s", point, j.Phase)
		}
		f.assertKeys(cur.Key)
	}
	res := p.Stop()
	t.Logf("prober across %d crashes: %s", len(points), res)
	if res.Rejected != 0 {
		t.Errorf("Vault's current key was refused %d times: %v", res.Rejected, res.Rejections)
	}
	f.assertNoLeak(f.current().Key)
}

// runRotatorProcess runs the rotator binary with the fixture's config and extra environment; a process killed by
// a signal returns minus the signal's number.
func (f *fixture) runRotatorProcess(bin string, env ...string) (int, string) {
	f.t.Helper()
	cmd := exec.Command(bin, "rotate", "--config", f.config)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	f.mu.Lock()
	f.outputs.Write(out)
	f.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal()), string(out)
		}
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return 0, string(out)
}
