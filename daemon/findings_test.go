package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/posture"
	"github.com/qdrantrotator/rotator/rotation"
)

// TestAuditRoute: GET /v1/audit answers a read token with the last review's findings as JSON (an empty list before
// the first), refuses a request without a token (401), and rotator_audit_findings counts the findings.
func TestAuditRoute(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr := rotation.NewManager(ctx, nil, rotation.Hooks{})
	findings := &Findings{}
	metrics := NewMetrics(mgr)
	metrics.WatchFindings(findings)
	tokens := NewTokens([]TokenSource{{Name: "grafana", Read: func(context.Context) (string, error) { return "read-tok-123", nil }}}, time.Minute, nil)
	srv := httptest.NewServer(NewHandler(Options{Manager: mgr, Tokens: tokens, Metrics: metrics.Handler(), Findings: findings,
		Ready: func(context.Context) error { return nil }}))
	defer srv.Close()
	get := func(path, token string) (int, string) {
		t.Helper()
		code, _, b := send(t, http.MethodGet, srv.URL+path, token, "")
		return code, string(b)
	}
	if code, _ := get("/v1/audit", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code, body := get("/v1/audit", "read-tok-123"); code != 200 || !strings.Contains(strings.Join(strings.Fields(body), ""), `"findings":[]`) {
		t.Fatalf("before any review: %d %s", code, body)
	}
	list := []posture.Finding{
		{Deployment: "prod", Node: "q0", Check: posture.CheckEnvKeys, Severity: posture.Medium, Evidence: "e", Practice: "p", Fix: "f"},
		{Deployment: "prod", Check: posture.CheckDuplicateKey, Severity: posture.High, Evidence: "key fp:0123456789abcdef", Practice: "p", Fix: "f"},
		{Deployment: "prod", Node: "q1", Check: posture.CheckEnvKeys, Severity: posture.Medium, Evidence: "e", Practice: "p", Fix: "f"},
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if !findings.Set(at, list) {
		t.Fatal("first review with findings: not a change")
	}
	if findings.Set(at.Add(time.Hour), list) {
		t.Fatal("the same findings again: a change")
	}
	code, body := get("/v1/audit", "read-tok-123")
	var got auditBody
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("%d %s: %v", code, body, err)
	}
	if len(got.Findings) != 3 || got.Findings[1].Severity != posture.High || !strings.Contains(strings.Join(strings.Fields(body), ""), `"severity":"high"`) {
		t.Fatalf("findings %s", body)
	}
	_, text := get("/metrics", "read-tok-123")
	for _, want := range []string{
		`rotator_audit_findings{check="keys_in_environment",deployment="prod",severity="medium"} 2`,
		`rotator_audit_findings{check="same_key_in_two_deployments",deployment="prod",severity="high"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestFindingsChangedEvent: a change of findings is one audit event naming the counts.
func TestFindingsChangedEvent(t *testing.T) {
	var out bytes.Buffer
	a := NewAuditor(&out, nil, slog.New(slog.DiscardHandler))
	a.FindingsChanged(time.Unix(0, 0), []posture.Finding{{Severity: posture.High}, {Severity: posture.Low}})
	a.Close()
	var ev AuditEvent
	if err := json.Unmarshal(out.Bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Event != "audit_findings_changed" || !strings.Contains(ev.Message, "2 finding(s): 1 high, 0 medium, 1 low") {
		t.Fatalf("event %+v", ev)
	}
}
