package qdrantctl

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/watch"
)

// TestAuditLog: POST /audit/logs with the admin key in the api-key header, the range, limit and filters in the
// body; the entries decoded; 400 "not enabled" / "not configured" as watch.ErrAuditOff, a cluster's 500 (a peer
// down) as another error; the key in no error; the node's own requests told apart by their x-request-id.
func TestAuditLog(t *testing.T) {
	key, err := rotation.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	var status int
	var answer string
	var got struct {
		key, requestID string
		body           map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/audit/logs" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		got.key, got.requestID = r.Header.Get("api-key"), r.Header.Get("x-request-id")
		b, _ := io.ReadAll(r.Body)
		got.body = nil
		_ = json.Unmarshal(b, &got.body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	n, err := NewNode(nil, NodeOptions{Container: "q0", Mode: ModeEnv, URL: srv.URL, RequestTag: "tag-1"})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	read := func() ([]watch.Entry, error) {
		return n.AuditLog(t.Context(), key, from, from.Add(time.Minute), 500, map[string]string{"result": "denied"})
	}

	status, answer = 200, `{"result":{"entries":[{"timestamp":"2026-12-01T12:00:05.123456789Z","api":"/collections","auth_type":"None","remote":"10.1.2.3","result":"denied","error":"Unauthorized: Invalid API key or JWT","tracing_id":"x"}]},"status":"ok","time":0.001}`
	entries, err := read()
	if err != nil {
		t.Fatal(err)
	}
	want := watch.Entry{Time: from.Add(5*time.Second + 123456789), API: "/collections", AuthType: "None", Remote: "10.1.2.3",
		Result: "denied", Error: "Unauthorized: Invalid API key or JWT", TracingID: "x"}
	if len(entries) != 1 || entries[0] != want {
		t.Errorf("entries %+v, want %+v", entries, want)
	}
	if got.key != key.Reveal() || got.body["time_from"] != "2026-12-01T12:00:00Z" || got.body["time_to"] != "2026-12-01T12:01:00Z" ||
		got.body["limit"] != 500.0 || got.body["filters"].(map[string]any)["result"] != "denied" {
		t.Errorf("request: body %v, the admin key sent: %v", got.body, got.key == key.Reveal())
	}
	if got.requestID != "tag-1" {
		t.Errorf("x-request-id %q, want the node's RequestTag", got.requestID)
	}

	for _, c := range []struct {
		name, answer string
		status       int
		off          bool
	}{
		{"not enabled", `{"status":{"error":"Bad request: Audit logging is not enabled"},"time":0}`, 400, true},
		{"not configured", `{"status":{"error":"Bad request: Audit logging is not configured"},"time":0}`, 400, true},
		{"peer down", `{"status":{"error":"Service internal error: Failed to fetch audit logs from peer 2: connection refused"},"time":0}`, 500, false},
		{"wrong key", `Unauthorized: Invalid API key or JWT`, 401, false},
	} {
		status, answer = c.status, c.answer
		_, err := read()
		if err == nil || errors.Is(err, watch.ErrAuditOff) != c.off || strings.Contains(err.Error(), key.Reveal()) {
			t.Errorf("%s: %v (audit off: %v, want %v)", c.name, err, errors.Is(err, watch.ErrAuditOff), c.off)
		}
	}
}
