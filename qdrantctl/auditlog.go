package qdrantctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/watch"
)

var _ watch.AuditSource = (*Node)(nil)

// auditLogRequest is the body of POST /audit/logs.
type auditLogRequest struct {
	TimeFrom string            `json:"time_from,omitempty"`
	TimeTo   string            `json:"time_to,omitempty"`
	Limit    int               `json:"limit,omitempty"`
	Filters  map[string]string `json:"filters,omitempty"`
}

// AuditLog implements watch.AuditSource with POST /audit/logs (Qdrant >= 1.17.1, manage access): the entries in
// [from, to) whose fields equal filters (e.g. result: denied), newest first, at most limit; in a cluster, every peer's (and an error while a peer is down). An
// audit log that is off answers 400, returned as watch.ErrAuditOff. The key goes in the api-key header only.
func (n *Node) AuditLog(ctx context.Context, admin rotation.Key, from, to time.Time, limit int, filters map[string]string) ([]watch.Entry, error) {
	return n.endpoint().auditLog(ctx, admin, from, to, limit, filters)
}

// auditLog reads the node's audit log (Node.AuditLog).
func (e endpoint) auditLog(ctx context.Context, admin rotation.Key, from, to time.Time, limit int, filters map[string]string) ([]watch.Entry, error) {
	base, err := e.base(ctx)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(auditLogRequest{TimeFrom: from.UTC().Format(time.RFC3339Nano), TimeTo: to.UTC().Format(time.RFC3339Nano), Limit: limit, Filters: filters})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/audit/logs?timeout=5", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.label, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-key", admin.Reveal())
	e.tagged(req)
	resp, err := e.client.Do(req)
	if err != nil {
		e.lost(ctx)
		return nil, fmt.Errorf("%s: POST /audit/logs: %w", e.label, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: POST /audit/logs: %w", e.label, err)
	}
	var env struct {
		Result struct {
			Entries []watch.Entry `json:"entries"`
		} `json:"result"`
		Status json.RawMessage `json:"status"`
	}
	_ = json.Unmarshal(data, &env)
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusBadRequest && bytes.Contains(data, []byte("Audit logging is not")):
		return nil, fmt.Errorf("%s: %w", e.label, watch.ErrAuditOff)
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s: POST /audit/logs: HTTP 404 (Qdrant older than 1.17.1): %w", e.label, watch.ErrAuditOff)
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("%s: POST /audit/logs: %w", e.label, rotation.ErrUnauthorized)
	default:
		return nil, fmt.Errorf("%s: POST /audit/logs: HTTP %d: %s", e.label, resp.StatusCode, statusText(env.Status))
	}
	return env.Result.Entries, nil
}

// statusText is the error of a Qdrant status envelope, shortened (it never holds a key: Qdrant does not echo them).
func statusText(raw json.RawMessage) string {
	var s struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &s) != nil || s.Error == "" {
		return "no error text"
	}
	return strings.TrimSpace(s.Error[:min(len(s.Error), 200)])
}

var _ watch.AuditSource = (*PodNode)(nil)

// AuditLog implements watch.AuditSource for a pod, at its pod IP (Node.AuditLog).
func (p *PodNode) AuditLog(ctx context.Context, admin rotation.Key, from, to time.Time, limit int, filters map[string]string) ([]watch.Entry, error) {
	return p.endpoint().auditLog(ctx, admin, from, to, limit, filters)
}
