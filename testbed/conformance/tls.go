package conformance

import (
	"net/http"
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/testbed/pki"
)

// tlsGroup: service.enable_tls serves REST over HTTPS with tls.cert/tls.key from their default paths
// ./tls/cert.pem and ./tls/key.pem (qdrant.md §1).
func tlsGroup() group {
	start := func(t *testing.T, target Target) *fixture {
		p, err := pki.New()
		if err != nil {
			t.Fatal(err)
		}
		k := newKey(t)
		n := target.Start(t, Setup{
			Env: map[string]string{"RUN_MODE": runMode},
			Files: map[string]string{
				"config/local.yaml": yamlService(map[string]any{"api_key": k, "enable_tls": true}),
				"tls/cert.pem":      string(p.CertPEM),
				"tls/key.pem":       string(p.KeyPEM),
				"tls/cacert.pem":    string(p.CAPEM),
			},
			TLS: true,
		})
		return &fixture{target: target, node: n, keys: keySet{api: k}, client: newClient(n.URL, p.CAPEM)}
	}
	return group{name: "tls", start: start, cases: []testCase{
		{name: "https_url", spec: "§1 service.enable_tls", run: func(t *testing.T, f *fixture) {
			if u := f.node.URL(); !strings.HasPrefix(u, "https://") {
				t.Errorf("node URL %q does not start with https:// (Target must report https when Setup.TLS)", u)
			}
		}},
		{name: "https_authenticated_request", spec: "§1 service.enable_tls, §3", run: func(t *testing.T, f *fixture) {
			expectWrites(t, f.client, "api_key over HTTPS (certificate verified against the test CA)", f.keys.api)
			expectAuthOn(t, f.client)
		}},
		{name: "https_health_exempt", spec: "§3.4, §6 over HTTPS", run: func(t *testing.T, f *fixture) {
			r := f.client.do(t, "GET", "/readyz", "")
			expectStatus(t, "GET /readyz over HTTPS without key", r, http.StatusOK)
		}},
		{name: "plain_http_refused", spec: "§1 service.enable_tls (REST is HTTPS only)", run: func(t *testing.T, f *fixture) {
			plainURL := "http://" + strings.TrimPrefix(f.node.URL(), "https://")
			plain := newClient(func() string { return plainURL }, nil)
			r, err := plain.try("GET", "/collections", "", apiKey(f.keys.api))
			if err == nil && r.status < 400 {
				t.Errorf("plain HTTP request to the TLS port: status %d, want a failure", r.status)
			}
		}},
	}}
}
