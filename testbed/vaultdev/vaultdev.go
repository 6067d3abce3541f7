// Package vaultdev starts the real Vault dev server (`vault server -dev`) on 127.0.0.1 for tests and the demo.
package vaultdev

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/testbed/syncbuf"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// Server is a running Vault dev server: in memory, unsealed, KV v2 mounted at secret/.
type Server struct {
	// Addr is the server's address, e.g. "http://127.0.0.1:41234".
	Addr string
	// Token is the root token.
	Token string
	// UnsealKey is the single unseal key the dev server printed (for seal/unseal tests).
	UnsealKey string
	// Bin is the vault binary that runs the server (also usable for `vault agent`).
	Bin string
	// CACert is, with TLS, the CA file clients must trust (what VAULT_CACERT names).
	CACert string

	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
}

// Binary returns a vault binary: $VAULT_BIN when set, else what testbed/vault/ensure-vault.sh yields (a vault >= 1.14
// on PATH, or Vault v1.14.0 built once from the Go module proxy and cached outside the repository).
func Binary(ctx context.Context) (string, error) {
	if bin := os.Getenv("VAULT_BIN"); bin != "" {
		return bin, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("vault binary: cannot locate testbed/vault/ensure-vault.sh")
	}
	script := filepath.Join(filepath.Dir(file), "..", "vault", "ensure-vault.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("vault binary: %s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Options shape a dev server.
type Options struct {
	Token string
	// TLS serves HTTPS with a CA the dev server makes (-dev-tls); Server.CACert names it.
	TLS bool
	// Logs receives the server's output (may be nil).
	Logs io.Writer
}

// Start starts a dev server with the given root token on a free 127.0.0.1 port and waits until it answers
// unsealed and active. Its output goes to o.Logs as well as to the server's own buffer.
func Start(ctx context.Context, bin string, o Options) (*Server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between probe and bind
		s, err := start(ctx, bin, o)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(ctx context.Context, bin string, o Options) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	scheme := "http://"
	args := []string{"server", "-dev", "-dev-root-token-id=" + o.Token, "-dev-listen-address=" + addr, "-dev-no-store-token"}
	if o.TLS {
		scheme = "https://"
		args = append(args, "-dev-tls")
	}
	s := &Server{Addr: scheme + addr, Token: o.Token, Bin: bin, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	// A clean environment: no VAULT_* of the caller's shell, and no ~/.vault-token helper surprises.
	s.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "VAULT_LOG_LEVEL=warn"}
	var w io.Writer = s.out
	if o.Logs != nil {
		w = io.MultiWriter(s.out, o.Logs)
	}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start vault dev server: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("vault dev server on %s: %w\n%s", addr, err, s.out.String())
	}
	return s, nil
}

// waitReady waits for the dev server's banner (its unseal key and, with TLS, its CA file), then polls sys/health
// until it says initialized, unsealed and active (HTTP 200), trusting only the dev CA with TLS.
func (s *Server) waitReady(ctx context.Context, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	unsealRe := regexp.MustCompile(`Unseal Key: (\S+)`)
	caRe := regexp.MustCompile(`VAULT_CACERT='([^']+)'`)
	tlsOn := strings.HasPrefix(s.Addr, "https://")
	client := http.DefaultClient
	return wait.For(ctx, "vault to be ready", bound, wait.Interval, func() (bool, error) {
		out := s.out.String()
		if s.UnsealKey == "" {
			if m := unsealRe.FindStringSubmatch(out); m != nil {
				s.UnsealKey = m[1]
			}
		}
		if tlsOn && s.CACert == "" {
			if m := caRe.FindStringSubmatch(out); m != nil {
				pem, err := os.ReadFile(m[1])
				if err != nil {
					return false, wait.Abort(fmt.Errorf("read the dev CA: %w", err))
				}
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(pem)
				s.CACert, client = m[1], &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			}
		}
		select {
		case <-s.done:
			return false, wait.Abort(errors.New("vault exited before it was ready"))
		default:
		}
		if s.UnsealKey == "" || (tlsOn && s.CACert == "") {
			return false, errors.New("no banner yet")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Addr+"/v1/sys/health", nil)
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("sys/health answers %d", resp.StatusCode)
	})
}

// Env returns the VAULT_ADDR and VAULT_TOKEN settings that point a client at this server.
func (s *Server) Env() []string {
	return []string{"VAULT_ADDR=" + s.Addr, "VAULT_TOKEN=" + s.Token}
}

// Output returns what the server printed so far.
func (s *Server) Output() string { return s.out.String() }

// Stop terminates the server (SIGTERM, then SIGKILL after 10 s) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// StartT starts a dev server for a test and stops it when the test ends. It fails the test when no vault binary
// can be had or the server does not come up: tests that need Vault never skip.
func StartT(t testing.TB) *Server {
	t.Helper()
	// Vault refuses a token ID with a dot (a subtest named local.yaml); the test's name is kept readable otherwise.
	return startT(t, Options{Token: "root-" + strings.NewReplacer("/", "-", ".", "-").Replace(t.Name())})
}

// StartTLST is StartT with HTTPS (the dev server's own CA, named by Server.CACert).
func StartTLST(t testing.TB) *Server {
	t.Helper()
	return startT(t, Options{Token: "root-tls", TLS: true})
}

func startT(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := Binary(context.Background())
	if err != nil {
		t.Fatalf("vault is required: %v", err)
	}
	s, err := Start(context.Background(), bin, o)
	if err != nil {
		t.Fatalf("vault is required: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
