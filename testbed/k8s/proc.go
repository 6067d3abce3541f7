package k8s

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// component is one process of the cluster, its output in logs/NAME.log.
type component struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error // set before exited closes
}

// run starts a binary of BinDir.
func (c *Cluster) run(name string, args ...string) (*component, error) {
	return c.runBinary(name, filepath.Join(c.BinDir, name), args...)
}

// runBinary starts a process in its own process group, killed with the test process if that dies first
// (Pdeathsig), and records it for Stop.
func (c *Cluster) runBinary(name, bin string, args ...string) (*component, error) {
	if err := os.MkdirAll(c.path("logs"), 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &component{name: name, logPath: c.path("logs", name+".log"), exited: make(chan struct{})}
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = c.dir
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c.procs = append(c.procs, p)
	go func() {
		p.waitErr = p.cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// component returns the started process of that name (nil if none).
func (c *Cluster) component(name string) *component {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (p *component) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exitError is nil while the process runs, else an error with how it ended and the tail of its log.
func (p *component) exitError() error {
	if p == nil || p.alive() {
		return nil
	}
	return fmt.Errorf("%s exited (%v); the end of %s:\n%s", p.name, p.waitErr, p.logPath, p.logTail(30))
}

// withLog adds the tail of the process's log to a failed wait (unless the error already carries it).
func (p *component) withLog(err error) error {
	if err == nil || p == nil || strings.Contains(err.Error(), p.logPath) {
		return err
	}
	return fmt.Errorf("%w; the end of %s:\n%s", err, p.logPath, p.logTail(30))
}

func (p *component) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// stop sends SIGTERM to the process, then SIGKILL to its process group after 20 s, and waits until it has exited.
func (p *component) stop() error {
	if !p.alive() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(20 * time.Second):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.exited:
		return fmt.Errorf("%s did not stop within 20s of SIGTERM; killed", p.name)
	case <-time.After(10 * time.Second):
		return errors.New(p.name + " survived SIGKILL")
	}
}
