package conformance

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/testbed/syncbuf"
)

const (
	// readyTimeout bounds how long Start and Restart wait for GET / to answer.
	readyTimeout = 15 * time.Second
	// exitTimeout bounds how long StartFailing waits for the process to exit by itself.
	exitTimeout = 15 * time.Second
	// stopTimeout bounds how long Stop waits after the signal (SIGTERM drains up to 30 s in Qdrant).
	stopTimeout = 40 * time.Second
)

// processTarget runs a Qdrant-compatible binary (the stand-in) as a plain child process.
type processTarget struct {
	binary string
}

// NewProcessTarget returns a Target that runs binary as a plain process: each node gets its own t.TempDir() as
// working directory, a free 127.0.0.1 port (QDRANT__SERVICE__HTTP_PORT, QDRANT__SERVICE__HOST) and an
// environment of only PATH, HOME and Setup.Env.
func NewProcessTarget(binary string) Target {
	return &processTarget{binary: binary}
}

func (p *processTarget) Name() string { return "process:" + filepath.Base(p.binary) }

func (p *processTarget) Start(t *testing.T, s Setup) Node {
	t.Helper()
	n := p.launch(t, s)
	n.waitReady(t)
	return n
}

func (p *processTarget) StartFailing(t *testing.T, s Setup) (int, string) {
	t.Helper()
	n := p.launch(t, s)
	select {
	case <-n.proc().done:
	case <-time.After(exitTimeout):
		n.kill()
		t.Fatalf("node still running %s after start; want it to exit by itself (output: %s)", exitTimeout, redact(n.Logs()))
	}
	return n.proc().code, n.Logs()
}

// launch prepares a node's directory and port and starts its process without waiting for readiness.
func (p *processTarget) launch(t *testing.T, s Setup) *processNode {
	t.Helper()
	n := &processNode{target: p, setup: s, dir: nodeDir(t, s.User), port: freePort(t), logs: &syncbuf.Buffer{}}
	for rel, content := range s.Files {
		n.WriteFile(t, rel, content)
	}
	t.Cleanup(n.kill)
	n.start(t)
	return n
}

// nodeDir returns the working directory of a new node. For a node run as another user it is a folder of its own
// under os.TempDir() (t.TempDir()'s parents are private to the test's user), owned by that user so that the node
// can create its storage, and removed when the test ends.
func nodeDir(t *testing.T, user *UserID) string {
	t.Helper()
	if user == nil {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "conformance-node-")
	if err != nil {
		t.Fatalf("node folder: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("node folder: %v", err)
	}
	if err := os.Chown(dir, user.UID, user.GID); err != nil {
		t.Fatalf("node folder for uid %d gid %d: %v", user.UID, user.GID, err)
	}
	return dir
}

// processNode is one node run by processTarget.
type processNode struct {
	target *processTarget
	setup  Setup
	dir    string
	port   int
	logs   *syncbuf.Buffer

	mu  sync.Mutex
	run *procRun
}

// procRun is one run of the node's process; done is closed once it has exited and code is set.
type procRun struct {
	cmd  *exec.Cmd
	done chan struct{}
	code int
}

func (n *processNode) proc() *procRun {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.run
}

func (n *processNode) env() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"QDRANT__SERVICE__HTTP_PORT=" + strconv.Itoa(n.port),
		"QDRANT__SERVICE__HOST=127.0.0.1",
	}
	for k, v := range n.setup.Env {
		env = append(env, k+"="+v)
	}
	return env
}

func (n *processNode) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(n.target.binary, n.setup.Args...)
	cmd.Dir = n.dir
	cmd.Env = n.env()
	if u := n.setup.User; u != nil && (u.UID != os.Geteuid() || u.GID != os.Getegid()) {
		if os.Geteuid() != 0 {
			t.Fatalf("running a node as uid %d gid %d needs a test running as root (euid %d)", u.UID, u.GID, os.Geteuid())
		}
		// No supplementary groups: root's would let the node read files through their group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}}
	}
	cmd.Stdout = n.logs
	cmd.Stderr = n.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", n.target.binary, err)
	}
	r := &procRun{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		r.code = exitCode(cmd, err)
		close(r.done)
	}()
	n.mu.Lock()
	n.run = r
	n.mu.Unlock()
}

// exitCode returns the process's exit code, or 128+signal when a signal ended it.
func exitCode(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState == nil {
		return -1
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return -1
	}
	return cmd.ProcessState.ExitCode()
}

// waitReady waits until GET / answers with any status, failing the test if the process exits or time runs out.
func (n *processNode) waitReady(t *testing.T) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	if n.setup.TLS {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // readiness probe only
	}
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	r := n.proc()
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			t.Fatalf("node exited with code %d before answering GET / (output: %s)", r.code, redact(n.Logs()))
		default:
		}
		resp, err := c.Get(n.URL() + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.kill()
	t.Fatalf("node did not answer GET / within %s (output: %s)", readyTimeout, redact(n.Logs()))
}

func (n *processNode) URL() string {
	scheme := "http"
	if n.setup.TLS {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, n.port)
}

func (n *processNode) Stop(t *testing.T, graceful bool) int {
	t.Helper()
	r := n.proc()
	if r == nil {
		t.Fatalf("Stop: node was never started")
	}
	select {
	case <-r.done:
		return r.code
	default:
	}
	sig := syscall.SIGKILL
	if graceful {
		sig = syscall.SIGTERM
	}
	if err := r.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal %v: %v", sig, err)
	}
	select {
	case <-r.done:
		return r.code
	case <-time.After(stopTimeout):
		n.kill()
		t.Errorf("node did not exit within %s after %v; killed", stopTimeout, sig)
		return r.code
	}
}

func (n *processNode) Restart(t *testing.T) {
	t.Helper()
	if r := n.proc(); r != nil {
		select {
		case <-r.done:
		default:
			n.Stop(t, true)
		}
	}
	n.start(t)
	n.waitReady(t)
}

// WriteFile writes the file with the owner and mode the setup gives it: Setup.Owners, else the node's user (if
// any) and 0600.
func (n *processNode) WriteFile(t *testing.T, rel, content string) {
	t.Helper()
	p := writeFile(t, n.dir, rel, content)
	owner, ok := n.setup.Owners[rel]
	switch {
	case ok:
	case n.setup.User != nil:
		owner = FileOwner{UID: n.setup.User.UID, GID: n.setup.User.GID, Mode: 0o600}
	default:
		return
	}
	if err := os.Chown(p, owner.UID, owner.GID); err != nil {
		t.Fatalf("owner of %s: %v", rel, err)
	}
	if err := os.Chmod(p, owner.Mode); err != nil {
		t.Fatalf("mode of %s: %v", rel, err)
	}
}

func (n *processNode) Logs() string { return n.logs.String() }

// kill ends the current process, if it still runs, and waits for it.
func (n *processNode) kill() {
	r := n.proc()
	if r == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Kill()
	<-r.done
}

// writeFile writes content to dir/rel, creating parent directories, and returns its path. The file is written
// to a temporary name and renamed, so a running node never reads half a file.
func writeFile(t *testing.T, dir, rel, content string) string {
	t.Helper()
	if filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		t.Fatalf("file path %q must be relative and stay inside the working directory", rel)
	}
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("mkdir for %s: %v", rel, err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", rel, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatalf("rename %s: %v", rel, err)
	}
	return p
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// secretLike matches runs of base64url characters as long as the suite's keys (43) or JWT segments.
var secretLike = regexp.MustCompile(`[A-Za-z0-9_-]{32,}`)

// redact hides anything in node output that could be a key or a token before it goes into a failure message.
func redact(s string) string {
	return secretLike.ReplaceAllString(s, "<redacted>")
}
