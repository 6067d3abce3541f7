package harness

import (
	"crypto/tls"
	"net/http"
	"time"
)

// probeClient is used only to see whether a node answers at all (GET / is auth-exempt and proves nothing about
// keys), so it does not verify TLS certificates.
func probeClient() *http.Client {
	return &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // reachability probe only
	}
}
