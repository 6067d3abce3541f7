package main

// The network hardening kit (deploy/nginx) under the real nginx from Debian's packages ($NGINX_BIN, see
// testbed/nginx/ensure-nginx.sh), run as a process on 127.0.0.1 in front of the rotator fixture's stand-in nodes.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/pki"
	"github.com/qdrantrotator/rotator/testbed/prober"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// kitVars are the template's variables (deploy/nginx/qdrant.conf.template), TLS and listen address aside.
type kitVars struct {
	allow                string // allow directives
	rate, burst          string
	anonRate, anonBurst  string
	maxBody              string
	upstreams            []string // host:port of each node's REST port
	failTimeoutPerServer string
}

// nginxKit is one running nginx serving the kit's template.
type nginxKit struct {
	url  string
	pool *x509.CertPool
}

// startNginxKit renders the kit's template and runs nginx with it on a free 127.0.0.1 port; t.Cleanup stops nginx
// and removes its prefix folder.
func startNginxKit(t *testing.T, v kitVars) *nginxKit {
	t.Helper()
	bin := os.Getenv("NGINX_BIN")
	if bin == "" {
		t.Fatal("NGINX_BIN is not set: run testbed/nginx/ensure-nginx.sh (make test does) and export its output")
	}
	// Not t.TempDir: nginx's workers run as nobody when the test runs as root, and must reach the temp paths.
	dir, err := os.MkdirTemp("", "nginx-kit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := pki.New()
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cert, key := write("cert.pem", p.CertPEM, 0o644), write("key.pem", p.KeyPEM, 0o600)
	port := freePort(t)
	var servers []string
	for _, u := range v.upstreams {
		servers = append(servers, fmt.Sprintf("server %s max_fails=1 fail_timeout=%s;", u, v.failTimeoutPerServer))
	}
	for _, u := range v.upstreams {
		servers = append(servers, fmt.Sprintf("server %s backup max_fails=0;", u))
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nginx", "qdrant.conf.template"))
	if err != nil {
		t.Fatal(err)
	}
	conf := renderKit(t, string(tmpl), map[string]string{
		"QDRANT_LISTEN": fmt.Sprintf("127.0.0.1:%d", port), "QDRANT_SERVER_NAME": "localhost",
		"QDRANT_TLS_CERT": cert, "QDRANT_TLS_KEY": key,
		"QDRANT_UPSTREAM_SERVERS": strings.Join(servers, "\n    "), "QDRANT_ALLOW": v.allow,
		"QDRANT_MAX_BODY": v.maxBody, "QDRANT_RATE": v.rate, "QDRANT_BURST": v.burst,
		"QDRANT_ANON_RATE": v.anonRate, "QDRANT_ANON_BURST": v.anonBurst,
	})
	write("qdrant.conf", []byte(conf), 0o644)
	user := ""
	if os.Geteuid() == 0 {
		user = "user nobody nogroup;\n"
	}
	main := fmt.Sprintf(`%sdaemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/qdrant.conf;
}
`, user, dir)
	confPath := write("nginx.conf", []byte(main), 0o644)
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful: workers finish their requests
		<-exited
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil {
				t.Logf("nginx error.log:\n%s", log)
			}
		}
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	k := &nginxKit{url: fmt.Sprintf("https://127.0.0.1:%d", port), pool: pool}
	wait.Until(t, "nginx to accept TLS connections", 20*time.Second, func() (bool, error) {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return false, wait.Abort(fmt.Errorf("nginx exited: %v\n%s", err, log))
		default:
		}
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool})
		if err != nil {
			return false, err
		}
		conn.Close()
		return true, nil
	})
	return k
}

var kitPlaceholder = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

// renderKit substitutes the template's ${NAME} placeholders (as envsubst with a variable list does), leaving nginx's
// own $variables alone; a placeholder without a value fails the test.
func renderKit(t *testing.T, tmpl string, vals map[string]string) string {
	t.Helper()
	return kitPlaceholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := kitPlaceholder.FindStringSubmatch(m)[1]
		v, ok := vals[name]
		if !ok {
			t.Fatalf("the template's %s has no value", m)
		}
		return v
	})
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// client connects from the address from, trusting the kit's CA if trust (else the system roots only).
func (k *nginxKit) client(from string, trust bool) *http.Client {
	cfg := &tls.Config{}
	if trust {
		cfg.RootCAs = k.pool
	}
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, TLSClientConfig: cfg, DialContext: d.DialContext}}
}

// status makes one request and returns the status (and the response's Strict-Transport-Security header).
func status(t *testing.T, c *http.Client, method, url string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, req.URL.Path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Strict-Transport-Security")
}

// nodeAddrs returns each fixture node's fixed REST address on 127.0.0.1 (fixtureOpts.fixedPorts): a port the engine
// picks may move when the container restarts, so nginx's upstreams would go stale.
func nodeAddrs(t *testing.T, f *fixture) []string {
	t.Helper()
	if len(f.restPorts) != len(f.names) {
		t.Fatal("the fixture's nodes have no fixed REST ports (fixtureOpts.fixedPorts)")
	}
	var out []string
	for _, p := range f.restPorts {
		out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	}
	return out
}

// TestNginxKit runs the kit in front of three nodes: TLS verified with the kit's CA, the allow list, the size limit,
// api-key and Authorization passed through, and a full rotation seen through the proxy with 0 rejections and 0
// failed requests, nginx routing around each restarting node.
func TestNginxKit(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 3, mode: "file", fixedPorts: true})
	f.writePoints(5)
	addrs := nodeAddrs(t, f)
	k := startNginxKit(t, kitVars{allow: "allow 127.0.0.1;", rate: "100r/s", burst: "200", anonRate: "5r/s",
		anonBurst: "10", maxBody: "1m", upstreams: addrs, failTimeoutPerServer: "10s"})
	c := k.client("127.0.0.1", true)
	key := map[string]string{"api-key": f.k1.Reveal()}

	t.Run("tls", func(t *testing.T) {
		code, hsts := status(t, c, http.MethodGet, k.url+"/collections", key, "")
		if code != 200 || !strings.Contains(hsts, "max-age=") {
			t.Errorf("a client trusting the kit's CA: HTTP %d, HSTS %q; want 200 with HSTS", code, hsts)
		}
		_, err := k.client("127.0.0.1", false).Get(k.url + "/collections")
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Errorf("a client without the kit's CA: %v; want a certificate verification error", err)
		}
		old := k.client("127.0.0.1", true)
		old.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
		if _, err := old.Get(k.url + "/collections"); err == nil {
			t.Error("a TLS 1.1 client was served; want TLS 1.2+ only")
		}
	})
	t.Run("credentials-pass-through", func(t *testing.T) {
		if code, _ := status(t, c, http.MethodGet, k.url+"/collections", map[string]string{"Authorization": "Bearer " + f.k1.Reveal()}, ""); code != 200 {
			t.Errorf("Authorization: Bearer with the key: HTTP %d, want 200", code)
		}
		if code, _ := status(t, c, http.MethodGet, k.url+"/collections/c", key, ""); code != 200 {
			t.Errorf("api-key with the key: HTTP %d, want 200", code)
		}
		if code, _ := status(t, c, http.MethodGet, k.url+"/collections", map[string]string{"api-key": "wrong"}, ""); code != 401 {
			t.Errorf("a wrong api-key: HTTP %d, want the node's 401", code)
		}
	})
	t.Run("allow-list", func(t *testing.T) {
		if code, _ := status(t, k.client("127.0.0.2", true), http.MethodGet, k.url+"/collections", key, ""); code != 403 {
			t.Errorf("a client from 127.0.0.2, outside the allow list: HTTP %d, want 403", code)
		}
	})
	t.Run("size-limit", func(t *testing.T) {
		body := `{"points":[{"id":1,"vector":[0,0,0,0],"payload":{"pad":"` + strings.Repeat("x", 2<<20) + `"}}]}`
		if code, _ := status(t, c, http.MethodPut, k.url+"/collections/c/points?wait=true", map[string]string{"api-key": f.k1.Reveal(), "Content-Type": "application/json"}, body); code != 413 {
			t.Errorf("a 2 MiB body with client_max_body_size 1m: HTTP %d, want 413", code)
		}
	})
	t.Run("rotation", func(t *testing.T) {
		p := &prober.Prober{
			Interval: 50 * time.Millisecond,
			Client:   c,
			Key: func(ctx context.Context) (string, error) {
				cur, err := f.store.ReadCurrent(ctx, deployment, rotation.SlotAdmin)
				return cur.Key.Reveal(), err
			},
			Nodes: func(context.Context) (map[string]string, error) { return map[string]string{"nginx": k.url}, nil },
		}
		p.Start(context.Background())
		code, out := f.rotator("rotate")
		res := p.Stop()
		if code != exitOK {
			t.Fatalf("rotate exited %d:\n%s", code, out)
		}
		t.Logf("prober through nginx: %s", res)
		if res.Rejected != 0 || res.Unreachable != 0 || res.Other != 0 || res.KeyErrors != 0 {
			t.Errorf("through nginx during the rotation: %s; want every request accepted (%v)", res, res.Rejections)
		}
		if res.Accepted < 20 {
			t.Errorf("only %d accepted calls; the zero-failure claim needs traffic", res.Accepted)
		}
		for _, a := range addrs { // the upstreams are still the nodes: their fixed ports survived the restarts
			req, _ := http.NewRequest(http.MethodGet, "http://"+a+"/collections", nil)
			req.Header.Set("api-key", f.current().Key.Reveal())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("upstream %s after the rotation: %v", a, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("upstream %s after the rotation: HTTP %d, want 200 with the current key", a, resp.StatusCode)
			}
		}
		f.assertNoLeak(f.current().Key, f.k1)
	})
	t.Run("rate-limit", func(t *testing.T) {
		// A second nginx with limits a test can reach: per address 1 request a minute with a burst of 5, and for
		// requests without a credential a burst of 1. Each client has its own loopback address.
		tight := startNginxKit(t, kitVars{allow: "allow 127.0.0.0/8;", rate: "1r/m", burst: "5", anonRate: "1r/m",
			anonBurst: "1", maxBody: "1m", upstreams: addrs, failTimeoutPerServer: "10s"})
		burst := func(from string, header map[string]string, n int) []int {
			var codes []int
			for i := 0; i < n; i++ {
				code, _ := status(t, tight.client(from, true), http.MethodGet, tight.url+"/collections", header, "")
				codes = append(codes, code)
			}
			return codes
		}
		// A refused key: the node's 401 until the burst is spent, then nginx's 429 without asking the node.
		refused := burst("127.0.0.3", map[string]string{"api-key": "refused-key"}, 12)
		if refused[0] != 401 || refused[len(refused)-1] != 429 || slices.Contains(refused, 200) {
			t.Errorf("12 requests with a refused key: %v; want 401s, then 429s", refused)
		}
		// No credential at all: the tighter zone answers 429 sooner.
		anon := burst("127.0.0.4", nil, 4)
		if anon[0] != 401 || anon[len(anon)-1] != 429 {
			t.Errorf("4 requests without a credential: %v; want 401, then 429s", anon)
		}
		t.Logf("refused key: %v; no credential: %v", refused, anon)
	})
}
