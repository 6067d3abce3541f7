package daemon

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// TestAuditEvents: which rotation steps are audit events and what each line says; a run's end is one only when it
// failed or rolled back.
func TestAuditEvents(t *testing.T) {
	var out bytes.Buffer
	a := NewAuditor(&out, nil, nil)
	run := rotation.Run{ID: "run-1", Deployment: "prod", Actor: "api:ops", RotationID: "rot-1"}
	at := time.Unix(1_800_000_000, 0).UTC()
	for _, e := range []rotation.Event{
		{Step: "minted", Fingerprint: "fp:01", Message: "minted a key"},
		{Step: "stage", Node: "q0", Message: "restarting"},
		{Step: "stage", Node: "q0", Fingerprint: "fp:01", Message: "checked: accepts both keys"},
		{Step: "published", Fingerprint: "fp:01", Message: "published"},
		{Step: "grace", Message: "waiting 1m0s"},
		{Step: "promote", Node: "q0", Message: "checked: new key alone"},
		{Step: "cut", Node: "q1", Message: "checked: emergency cut"},
		{Step: "retired", Fingerprint: "fp:00", Message: "retired"},
		{Step: "adopted", Fingerprint: "fp:02", Message: "adopted"},
	} {
		e.Time, e.RotationID = at, "rot-1"
		a.Event(run, e)
	}
	for _, state := range []rotation.RunState{rotation.RunCompleted, rotation.RunFailed, rotation.RunRolledBack, rotation.RunLocked, rotation.RunPlanned} {
		r := run
		r.State, r.Error, r.Finished = state, "because", at
		a.Finished(r)
	}
	a.Close()
	var got []AuditEvent
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var ev AuditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		got = append(got, ev)
	}
	want := []AuditEvent{
		{Event: "minted", Fingerprint: "fp:01", Message: "minted a key"},
		{Event: "staged", Node: "q0", Fingerprint: "fp:01", Message: "checked: accepts both keys"},
		{Event: "published", Fingerprint: "fp:01", Message: "published"},
		{Event: "promoted", Node: "q0", Message: "checked: new key alone"},
		{Event: "promoted", Node: "q1", Message: "checked: emergency cut"},
		{Event: "retired", Fingerprint: "fp:00", Message: "retired"},
		{Event: "adopted", Fingerprint: "fp:02", Message: "adopted"},
		{Event: "failed", Message: "because"},
		{Event: "rolled_back", Message: "because"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d:\n%s", len(got), len(want), out.String())
	}
	for i, w := range want {
		w.Time, w.Deployment, w.RotationID, w.RunID, w.Actor = at, "prod", "rot-1", "run-1", "api:ops"
		if !got[i].Time.Equal(w.Time) {
			t.Errorf("event %d at %s, want %s", i, got[i].Time, w.Time)
		}
		got[i].Time = w.Time
		if got[i] != w {
			t.Errorf("event %d = %+v\nwant %+v", i, got[i], w)
		}
	}
}

// TestWebhooks: every event is POSTed to every webhook with X-Rotator-Signature: sha256=HMAC-SHA256(secret, body),
// the body being the event's log line; the secret file is read at each delivery (rotating it takes effect); a 5xx,
// 408 or 429 is retried, another 4xx is not (nor does it hold up the events behind it); a receiver that cannot be
// delivered to is logged by host only, since webhook URLs often carry a secret in their path.
func TestWebhooks(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "hook.secret")
	writeSecret := func(s string) {
		if err := os.WriteFile(secretFile, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeSecret("secret-one")
	type delivery struct {
		body      []byte
		signature string
	}
	var mu sync.Mutex
	var got []delivery
	var answers []int // status codes the receiver gives, in turn; then 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		code := http.StatusOK
		if len(answers) > 0 {
			code, answers = answers[0], answers[1:]
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.URL.Path != "/hooks/s3cr3t-path" {
			code = http.StatusTeapot
		}
		got = append(got, delivery{b, r.Header.Get(SignatureHeader)})
		w.WriteHeader(code)
	}))
	defer srv.Close()
	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, delivery{body: []byte("refused")})
		w.WriteHeader(http.StatusNotFound)
	}))
	defer refused.Close()

	var out, logs bytes.Buffer // written by the delivery goroutine, read once Close has waited for it
	a := NewAuditor(&out, []Webhook{
		{URL: refused.URL + "/hooks/other-s3cr3t", Secret: SecretFile(secretFile)},
		{URL: srv.URL + "/hooks/s3cr3t-path", Secret: SecretFile(secretFile)},
	}, slogTo(&logs))
	run := rotation.Run{ID: "run-1", Deployment: "prod", Actor: "schedule"}
	mu.Lock()
	answers = []int{http.StatusInternalServerError, http.StatusRequestTimeout, http.StatusTooManyRequests} // then 200
	mu.Unlock()
	a.Event(run, rotation.Event{Step: "minted", Fingerprint: "fp:01", Message: "minted"})
	a.Close() // delivers what is queued

	a2 := NewAuditor(&out, []Webhook{{URL: srv.URL + "/hooks/s3cr3t-path", Secret: SecretFile(secretFile)}}, nil)
	writeSecret("secret-two")
	a2.Event(run, rotation.Event{Step: "published", Fingerprint: "fp:01", Message: "published"})
	a2.Close()

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	mu.Lock()
	defer mu.Unlock()
	// refused once (404: not retried), the receiver 3 failures then the event; then the second event.
	if len(got) != 6 || string(got[0].body) != "refused" || len(lines) != 2 {
		t.Fatalf("%d deliveries, %d log lines: %q", len(got), len(lines), got)
	}
	for i, d := range got[1:4] {
		if !bytes.Equal(d.body, got[4].body) {
			t.Errorf("retry %d sent another body: %s", i, d.body)
		}
	}
	for i, c := range []struct {
		d      delivery
		line   string
		secret string
	}{{got[4], lines[0], "secret-one"}, {got[5], lines[1], "secret-two"}} {
		if string(c.d.body) != c.line {
			t.Errorf("delivery %d: body %s, want the log line %s", i, c.d.body, c.line)
		}
		mac := hmac.New(sha256.New, []byte(c.secret))
		mac.Write(c.d.body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); c.d.signature != want {
			t.Errorf("delivery %d: signature %q, want %q (HMAC-SHA256 under %s)", i, c.d.signature, want, c.secret)
		}
	}
	host := strings.TrimPrefix(refused.URL, "http://")
	if !strings.Contains(logs.String(), "audit webhook delivery failed") || !strings.Contains(logs.String(), "host="+host) ||
		!strings.Contains(logs.String(), "HTTP 404") {
		t.Errorf("the refusal is not logged with its host:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "s3cr3t") || strings.Contains(logs.String(), "secret-one") {
		t.Errorf("the log shows a webhook's path or secret:\n%s", logs.String())
	}
}

// TestWebhookSecretUnusable: a secret file that is missing or blank is never an empty HMAC key: nothing is sent,
// the failure is logged without retrying, and the event stays in the log stream.
func TestWebhookSecretUnusable(t *testing.T) {
	dir := t.TempDir()
	blank := filepath.Join(dir, "blank.secret")
	if err := os.WriteFile(blank, []byte(" \n\t"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{blank, filepath.Join(dir, "missing.secret")} {
		if _, err := SecretFile(path)(); err == nil {
			t.Errorf("SecretFile(%s) gave a secret", path)
		}
	}
	var mu sync.Mutex
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { mu.Lock(); posts++; mu.Unlock() }))
	defer srv.Close()
	var out, logs bytes.Buffer
	a := NewAuditor(&out, []Webhook{{URL: srv.URL + "/x", Secret: SecretFile(blank)}, {URL: srv.URL + "/y", Secret: SecretFile(filepath.Join(dir, "missing.secret"))}},
		slogTo(&logs))
	a.Event(rotation.Run{ID: "run-1", Deployment: "prod"}, rotation.Event{Step: "retired", Message: "retired"})
	a.Close()
	mu.Lock()
	defer mu.Unlock()
	if posts != 0 {
		t.Errorf("%d requests sent without a usable secret", posts)
	}
	if n := strings.Count(logs.String(), "audit webhook delivery failed"); n != 2 || !strings.Contains(logs.String(), "is empty") {
		t.Errorf("%d failures logged, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(out.String(), `"event":"retired"`) {
		t.Errorf("the event is not in the log stream: %s", out.String())
	}
}
