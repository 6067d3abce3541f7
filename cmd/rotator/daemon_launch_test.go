package main

// The one launcher of `rotator daemon` in the tests and benchmarks, in-process or as a separate process, and the
// calls tests make to it.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/daemon"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/syncbuf"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// daemonUnderTest is a `rotator daemon` a test launched.
type daemonUnderTest struct {
	url string
	out *syncbuf.Buffer
	// cmd is the daemon's process; nil when it runs in-process.
	cmd *exec.Cmd
	// ask asks the daemon to stop: cancels its context, or sends SIGTERM to its process.
	ask  func()
	done chan int
}

// daemonOpts say how to launch a daemon.
type daemonOpts struct {
	// bin, when set, is a rotator binary (buildRotator) run as a separate process, which a test can kill; else the
	// daemon is run() in-process.
	bin string
	// env is the environment the daemon sees besides PATH (a process gets PATH, the in-process run nothing else).
	env map[string]string
}

// buildRotator builds the rotator binary into a temporary folder.
func buildRotator(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rotator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build rotator: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a 127.0.0.1 address with a port free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// launchDaemon starts `rotator daemon --config config --listen 127.0.0.1:PORT` and waits until it answers /healthz.
// When the test ends, an in-process daemon is stopped (and must stop within 60 s) and a process is killed.
func launchDaemon(t testing.TB, config string, o daemonOpts) *daemonUnderTest {
	t.Helper()
	addr := freeAddr(t)
	args := []string{"daemon", "--config", config, "--listen", addr}
	d := &daemonUnderTest{url: "http://" + addr, out: &syncbuf.Buffer{}, done: make(chan int, 1)}
	if o.bin == "" {
		ctx, cancel := context.WithCancel(context.Background())
		d.ask = cancel
		go func() { d.done <- run(ctx, args, func(k string) string { return o.env[k] }, d.out, d.out) }()
		t.Cleanup(func() { d.stop(t) })
	} else {
		d.cmd = exec.Command(o.bin, args...)
		d.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range o.env {
			d.cmd.Env = append(d.cmd.Env, k+"="+v)
		}
		d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		d.ask = func() { _ = d.cmd.Process.Signal(syscall.SIGTERM) }
		go func() {
			_ = d.cmd.Wait()
			d.done <- d.cmd.ProcessState.ExitCode()
		}()
		t.Cleanup(func() { _ = d.cmd.Process.Kill() })
	}
	wait.Until(t, "the daemon to answer /healthz", 20*time.Second, func() (bool, error) {
		resp, err := http.Get(d.url + "/healthz")
		if err != nil {
			return false, fmt.Errorf("%w; its output:\n%s", err, d.out)
		}
		resp.Body.Close()
		return true, nil
	})
	return d
}

// startDaemon launches a daemon on the fixture's config; what it printed joins the fixture's outputs once it is
// stopped at the end.
func (f *fixture) startDaemon(o daemonOpts) *daemonUnderTest {
	f.t.Helper()
	var d *daemonUnderTest
	f.t.Cleanup(func() { // registered first, so it runs after the daemon's own clean-up
		if d != nil {
			f.mu.Lock()
			f.outputs.WriteString(d.out.String())
			f.mu.Unlock()
		}
	})
	d = launchDaemon(f.t, f.config, o)
	return d
}

// stop asks the daemon to stop and returns its exit code (again on a second call).
func (d *daemonUnderTest) stop(t testing.TB) int {
	t.Helper()
	d.ask()
	select {
	case code := <-d.done:
		d.done <- code
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon did not stop within 60s")
		return -1
	}
}

// request makes an API call and decodes the JSON answer.
func (d *daemonUnderTest) request(t testing.TB, method, path, token, body string, out any) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, d.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if s, ok := out.(*string); ok {
		*s = string(data)
	} else if out != nil && len(data) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode, resp.Header
}

// waitRun polls a run until it has ended (neither queued nor running), and returns it.
func (d *daemonUnderTest) waitRun(t testing.TB, token, id string) rotation.Run {
	t.Helper()
	var run rotation.Run
	wait.Until(t, "run "+id+" to end", 60*time.Second, func() (bool, error) {
		run = rotation.Run{}
		if code, _ := d.request(t, http.MethodGet, "/v1/rotations/"+id, token, "", &run); code != 200 {
			t.Fatalf("GET rotation %s: HTTP %d", id, code)
		}
		return run.State.Final(), nil
	})
	return run
}

// waitPhase polls a run until it reaches phase; it fails the test if the run ends first.
func (d *daemonUnderTest) waitPhase(t testing.TB, token, id string, phase rotation.Phase) {
	t.Helper()
	wait.Until(t, "run "+id+" to reach phase "+string(phase), 30*time.Second, func() (bool, error) {
		var run rotation.Run
		d.request(t, http.MethodGet, "/v1/rotations/"+id, token, "", &run)
		if run.Phase != phase && run.State.Final() {
			t.Fatalf("run ended %s before phase %s", run.State, phase)
		}
		return run.Phase == phase, nil
	})
}

// webhookSink receives the daemon's webhook deliveries and checks each one's signature with secret.
type webhookSink struct {
	*httptest.Server
	mu            sync.Mutex
	events        []daemon.AuditEvent
	bodies        strings.Builder
	badSignatures int
}

func newWebhookSink(t *testing.T, secret []byte) *webhookSink {
	t.Helper()
	s := &webhookSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Header.Get(daemon.SignatureHeader) != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			s.badSignatures++
		}
		var ev daemon.AuditEvent
		_ = json.Unmarshal(body, &ev)
		s.events = append(s.events, ev)
		s.bodies.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}
