// Package dockerd runs a second Docker Engine on this machine for tests of nodes spread over several engines: a
// dockerd of its own (/usr/sbin/dockerd, run as root) with its own data root (vfs storage), exec root, pidfile,
// unix socket and Linux bridge on a private /24, optionally also listening on tcp://127.0.0.1:PORT with
// --tlsverify and client certificates from testbed/pki. It runs no iptables rules (published ports are served by
// docker-proxy on 127.0.0.1), so it leaves the main engine's rules alone. Nothing can be pulled: LoadImage copies an
// image of the main engine into it (docker save | docker load). Stop (or the test's cleanup) stops it by its PID and
// removes its bridge and folders.
package dockerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/testbed/dockerbed"
	"github.com/qdrantrotator/rotator/testbed/pki"
	"github.com/qdrantrotator/rotator/testbed/syncbuf"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// Binary is the dockerd the test bed runs.
const Binary = "/usr/sbin/dockerd"

// Options configure a Daemon.
type Options struct {
	// TLS also serves the API on tcp://127.0.0.1:PORT, verifying client certificates (TCPHost, CertDir).
	TLS bool
}

// Daemon is a running second Docker Engine.
type Daemon struct {
	// Host is its unix socket, unix:///.../docker.sock.
	Host string
	// TCPHost is tcp://127.0.0.1:PORT with Options.TLS (else "").
	TCPHost string
	// CertDir holds ca.pem, cert.pem and key.pem, the client's files for TCPHost (a DOCKER_CERT_PATH).
	CertDir string

	dir    string
	bridge string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncbuf.Buffer
}

// Start starts a dockerd and waits (up to 60 s) until it answers on its socket.
func Start(ctx context.Context, opt Options) (*Daemon, error) {
	// Short paths: containerd's sockets live under the exec root, and a unix socket path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "qdd-")
	if err != nil {
		return nil, fmt.Errorf("second dockerd: %w", err)
	}
	d := &Daemon{dir: dir, Host: "unix://" + filepath.Join(dir, "docker.sock"), exited: make(chan struct{}), log: &syncbuf.Buffer{}}
	if err := d.start(ctx, opt); err != nil {
		return nil, errors.Join(err, d.Stop())
	}
	return d, nil
}

func (d *Daemon) start(ctx context.Context, opt Options) error {
	subnet, err := freeSubnet()
	if err != nil {
		return err
	}
	id := randomHex(4)
	d.bridge = "qdd" + id // at most 15 bytes, the kernel's limit on interface names
	for _, args := range [][]string{
		{"link", "add", "name", d.bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("10.213.%d.1/24", subnet), "dev", d.bridge},
		{"link", "set", d.bridge, "up"},
	} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			if args[0] == "link" && args[1] == "add" {
				d.bridge = "" // nothing to remove
			}
			return fmt.Errorf("second dockerd: ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	// An empty config file: the machine's /etc/docker/daemon.json is the main engine's (data root, storage driver).
	conf := filepath.Join(d.dir, "daemon.json")
	if err := os.WriteFile(conf, []byte("{}\n"), 0o600); err != nil {
		return fmt.Errorf("second dockerd: %w", err)
	}
	args := []string{
		"--config-file", conf, "--data-root", filepath.Join(d.dir, "data"), "--exec-root", filepath.Join(d.dir, "x"),
		"--pidfile", filepath.Join(d.dir, "docker.pid"), "-H", d.Host, "--storage-driver", "vfs",
		"--bridge", d.bridge, "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--mtu", "1400",
		// The networks a test creates on it come from another private range, apart from the main engine's.
		"--default-address-pool", fmt.Sprintf("base=10.215.%d.0/24,size=28", subnet),
	}
	if opt.TLS {
		port, err := freePort()
		if err != nil {
			return err
		}
		if err := d.writeCerts(); err != nil {
			return err
		}
		d.TCPHost = fmt.Sprintf("tcp://127.0.0.1:%d", port)
		args = append(args, "-H", d.TCPHost, "--tlsverify",
			"--tlscacert", filepath.Join(d.CertDir, "ca.pem"),
			"--tlscert", filepath.Join(d.dir, "server-cert.pem"), "--tlskey", filepath.Join(d.dir, "server-key.pem"))
	}
	d.cmd = exec.Command(Binary, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.cmd = nil
		return fmt.Errorf("second dockerd: %w", err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	return d.waitAnswering(ctx)
}

// writeCerts writes the CA, the server's certificate for 127.0.0.1 and the client's (CertDir).
func (d *Daemon) writeCerts() error {
	p, err := pki.New()
	if err != nil {
		return fmt.Errorf("second dockerd: %w", err)
	}
	d.CertDir = filepath.Join(d.dir, "client")
	if err := os.Mkdir(d.CertDir, 0o700); err != nil {
		return fmt.Errorf("second dockerd: %w", err)
	}
	for path, data := range map[string][]byte{
		filepath.Join(d.CertDir, "ca.pem"): p.CAPEM, filepath.Join(d.CertDir, "cert.pem"): p.ClientCertPEM,
		filepath.Join(d.CertDir, "key.pem"): p.ClientKeyPEM, filepath.Join(d.dir, "server-cert.pem"): p.CertPEM,
		filepath.Join(d.dir, "server-key.pem"): p.KeyPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("second dockerd: %w", err)
		}
	}
	return nil
}

// waitAnswering polls GET /_ping on the socket.
func (d *Daemon) waitAnswering(ctx context.Context) error {
	sock := strings.TrimPrefix(d.Host, "unix://")
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	return wait.For(ctx, "the second dockerd to answer on "+d.Host, 60*time.Second, 100*time.Millisecond, func() (bool, error) {
		select {
		case <-d.exited:
			return false, wait.Abort(fmt.Errorf("the second dockerd exited:\n%s", tail(d.log.String(), 20)))
		default:
		}
		resp, err := client.Get("http://docker/_ping")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// LoadImage copies an image of the main engine (the DOCKER_* environment) into this one.
func (d *Daemon) LoadImage(ctx context.Context, ref string) error {
	if err := dockerbed.SaveInto(ctx, ref, exec.CommandContext(ctx, "docker", "-H", d.Host, "load", "-q")); err != nil {
		return fmt.Errorf("load image %s: %w", ref, err)
	}
	return nil
}

// Stop stops the dockerd by its PID (SIGTERM, SIGKILL after 30 s), then removes its bridge and folders. A second
// Stop does nothing.
func (d *Daemon) Stop() error {
	var errs []error
	if d.cmd != nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.exited
			errs = append(errs, errors.New("the second dockerd did not stop within 30s of SIGTERM; killed"))
		}
		d.cmd = nil
	}
	if d.bridge != "" {
		if out, err := exec.Command("ip", "link", "del", d.bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("remove bridge %s: %w: %s", d.bridge, err, out))
		}
		d.bridge = ""
	}
	if d.dir != "" {
		// The exec root may still hold mounts of what the daemon ran (network namespaces): unmount them first.
		unmountUnder(filepath.Join(d.dir, "x"))
		if err := os.RemoveAll(d.dir); err != nil {
			errs = append(errs, err)
		}
		d.dir = ""
	}
	return errors.Join(errs...)
}

// unmountUnder lazily unmounts every mount point below dir (deepest first).
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// StartT starts a second dockerd for a test, with the test's cleanup stopping it. It fails the test (never skips)
// when the daemon cannot start.
func StartT(t testing.TB, opt Options) *Daemon {
	t.Helper()
	d, err := Start(context.Background(), opt)
	if err != nil {
		t.Fatalf("a second docker engine is required: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("second dockerd cleanup: %v", err)
		}
	})
	return d
}

// LoadImageT loads an image of the main engine into the daemon for a test.
func (d *Daemon) LoadImageT(t testing.TB, ref string) {
	t.Helper()
	if err := d.LoadImage(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
}

// freeSubnet picks X such that neither 10.213.X.0/24 (the bridge) nor 10.215.X.0/24 (the networks a test creates)
// meets an address of this machine's interfaces.
func freeSubnet() (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, fmt.Errorf("second dockerd: %w", err)
	}
	b := make([]byte, 1)
	for range 64 {
		_, _ = rand.Read(b)
		x := int(b[0])
		used := false
		for _, a := range addrs {
			ip, _, _ := net.ParseCIDR(a.String())
			if v4 := ip.To4(); v4 != nil && v4[0] == 10 && (v4[1] == 213 || v4[1] == 215) && int(v4[2]) == x {
				used = true
			}
		}
		if !used {
			return x, nil
		}
	}
	return 0, errors.New("second dockerd: no free 10.213.X.0/24")
}

// freePort returns a 127.0.0.1 TCP port free at the moment.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("second dockerd: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
