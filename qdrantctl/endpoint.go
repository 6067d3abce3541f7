package qdrantctl

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// endpoint is a node's REST API as the rotator calls it, the same whether the node is a Docker container or a
// Kubernetes pod: the authenticated probe and the cluster view.
type endpoint struct {
	label  string // "node NAME", as messages name the node
	client *http.Client
	tag    string // NodeOptions.RequestTag
	// base is the node's base URL, e.g. http://127.0.0.1:6333.
	base func(ctx context.Context) (string, error)
	// lost is called after a request could not be made: it forgets an address that may have changed and says
	// whether the node's process has stopped.
	lost func(ctx context.Context) bool
}

// newHTTPClient is the client of a node's checks: a short timeout, no connection kept between checks (a restarted
// node is a new server), and no redirect followed, because the request carries the api-key header, which would go
// to wherever the 3xx points (the 3xx comes back as the answer and is reported as an error).
func newHTTPClient(cfg *tls.Config) *http.Client {
	transport := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	return &http.Client{Timeout: 3 * time.Second, Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// tagged marks a request of the rotator's own with the endpoint's request tag.
func (e endpoint) tagged(req *http.Request) {
	if e.tag != "" {
		req.Header.Set("x-request-id", e.tag)
	}
}

// probe is rotation.Node's Probe: GET /collections with key, an authenticated call (health endpoints skip auth).
func (e endpoint) probe(ctx context.Context, key rotation.Key) error {
	base, err := e.base(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/collections", nil)
	if err != nil {
		return fmt.Errorf("%s: %w", e.label, err)
	}
	req.Header.Set("api-key", key.Reveal())
	e.tagged(req)
	resp, err := e.client.Do(req)
	if err != nil {
		if e.lost(ctx) {
			return fmt.Errorf("%s: %w", e.label, rotation.ErrNodeDown)
		}
		return fmt.Errorf("%s: %w", e.label, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("%s answered HTTP %d; redirects are not followed", e.label, resp.StatusCode)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%s: %w", e.label, rotation.ErrUnauthorized)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: HTTP %d: %w", e.label, resp.StatusCode, rotation.ErrRejected)
	default:
		return fmt.Errorf("%s: GET /collections: HTTP %d", e.label, resp.StatusCode)
	}
}
