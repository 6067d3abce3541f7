package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA and a server certificate for 127.0.0.1 and localhost signed by it, all PEM.
type testPKI struct {
	caPEM, certPEM, keyPEM []byte
}

// newTestPKI makes a fresh self-signed CA and a server certificate (ECDSA P-256, key in PKCS#8).
func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("CA key: %v", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "conformance test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("CA certificate: %v", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("server key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("server key: %v", err)
	}
	return testPKI{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// tlsGroup: service.enable_tls serves REST over HTTPS with tls.cert/tls.key from their default paths
// ./tls/cert.pem and ./tls/key.pem (qdrant.md §1).
func tlsGroup() group {
	start := func(t *testing.T, target Target) *fixture {
		pki := newTestPKI(t)
		k := newKey(t)
		n := target.Start(t, Setup{
			Env: map[string]string{"RUN_MODE": runMode},
			Files: map[string]string{
				"config/local.yaml": yamlService(map[string]any{"api_key": k, "enable_tls": true}),
				"tls/cert.pem":      string(pki.certPEM),
				"tls/key.pem":       string(pki.keyPEM),
				"tls/cacert.pem":    string(pki.caPEM),
			},
			TLS: true,
		})
		return &fixture{target: target, node: n, keys: keySet{api: k}, client: newClient(n.URL, pki.caPEM)}
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
