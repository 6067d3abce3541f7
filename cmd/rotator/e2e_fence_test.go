package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/syncbuf"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// TestFrozenRotatorProcessAppliesNothingStale: a real rotator process freezes (SIGSTOP) just before it would stage
// a node, past its lease; a second rotator takes over and finishes the rotation; the first is then resumed
// (SIGCONT). It must stop at its fence instead of applying its stale slots: after both end, every node accepts
// Vault's current key and refuses every retired key and a key never issued.
func TestFrozenRotatorProcessAppliesNothingStale(t *testing.T) {
	for _, mode := range []string{"file", "env"} {
		t.Run(mode, func(t *testing.T) {
			bin := buildRotator(t)
			f := newFixture(t, fixtureOpts{nodes: 2, mode: mode})
			k1 := f.current().Key
			a, out, done := f.startFrozenRotator(bin, "stage:"+f.names[1]+":begin")
			time.Sleep(3500 * time.Millisecond) // past the fixture's lease_ttl (3s)
			if code, text := f.rotator("rotate"); code != exitOK || !strings.Contains(text, "resumed") {
				t.Fatalf("the second rotator exited %d, want 0 resuming the frozen one's rotation:\n%s", code, text)
			}
			if err := a.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-done:
				if code == exitOK || !strings.Contains(out.String(), rotation.ErrLeaseLost.Error()) {
					t.Errorf("the resumed rotator exited %d, want a failure saying its lease was lost:\n%s", code, out.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatal("the resumed rotator did not end")
			}
			cur := f.current()
			if cur.Key.Equal(k1) || cur.Version != 2 {
				t.Fatalf("Vault version %d: want the one rotation (version 2)", cur.Version)
			}
			stranger, _ := rotation.NewKey()
			f.assertKeys(cur.Key, k1, stranger)
			if code, text := f.rotator("verify"); code != exitOK {
				t.Errorf("verify exited %d:\n%s", code, text)
			}
		})
	}
}

// startFrozenRotator runs `rotator rotate` as a process of its own that freezes itself (SIGSTOP) at a checkpoint,
// and waits until it has; it returns the process, its output and a channel of its exit code. The test's cleanup
// resumes and kills it and adds its output to the leak check.
func (f *fixture) startFrozenRotator(bin, point string) (*exec.Cmd, *syncbuf.Buffer, <-chan int) {
	t := f.t
	t.Helper()
	out := &syncbuf.Buffer{}
	a := exec.Command(bin, "rotate", "--config", f.config)
	a.Env = []string{"PATH=" + os.Getenv("PATH"), freezeHookEnv + "=" + point}
	a.Stdout, a.Stderr = out, out
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { _ = a.Wait(); done <- a.ProcessState.ExitCode() }()
	t.Cleanup(func() {
		_ = a.Process.Signal(syscall.SIGCONT)
		_ = a.Process.Kill()
		f.mu.Lock()
		f.outputs.WriteString(out.String())
		f.mu.Unlock()
	})
	waitStopped(t, a.Process.Pid, done)
	return a, out, done
}

// waitStopped waits until the process is stopped (state T in /proc/PID/stat).
func waitStopped(t testing.TB, pid int, done <-chan int) {
	t.Helper()
	wait.UntilEvery(t, "the rotator to freeze", 60*time.Second, 20*time.Millisecond, func() (bool, error) {
		select {
		case code := <-done:
			t.Fatalf("the rotator exited %d before it froze", code)
		default:
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false, err
		}
		i := strings.LastIndexByte(string(stat), ')')
		return i > 0 && len(stat) > i+2 && stat[i+2] == 'T', nil
	})
}
