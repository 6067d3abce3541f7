package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/daemon"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// TestDaemonAPI: the auth matrix, 202 then 409 while busy, progress until done, a dry run that changes nothing,
// 404 and 400, /metrics, audit events on the log stream and signed webhooks, and no key material anywhere.
func TestDaemonAPI(t *testing.T) {
	secret := []byte("webhook-secret-for-tests")
	hook := newWebhookSink(t, secret)

	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", grace: "2s", top: `daemon:
  poll_interval: 200ms
  tokens:
    - {name: ops, role: admin, file: admin.token}
    - {name: grafana, role: read, env: READ_TOKEN}
  webhooks:
    - {url: ` + hook.URL + `, secret_file: hook.secret}
`})
	admin, reader := randomHex(16), randomHex(16)
	// The daemon logs in with a child token of its own, revoked at the end to see /readyz report it.
	daemonToken := childToken(t, f)
	for name, v := range map[string]string{"admin.token": admin, "hook.secret": string(secret), "token": daemonToken} {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := f.startDaemon(daemonOpts{env: map[string]string{"READ_TOKEN": reader}})
	post := "/v1/deployments/" + deployment + "/rotations"

	var e struct {
		Error             string `json:"error"`
		RunningRotationID string `json:"running_rotation_id"`
		ID                string `json:"id"`
	}
	for _, c := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"no token", http.MethodPost, post, "", `{}`, 401},
		{"wrong token", http.MethodPost, post, "nope", `{}`, 401},
		{"read token on POST", http.MethodPost, post, reader, `{}`, 403},
		{"read token on GET", http.MethodGet, "/v1/deployments", reader, "", 200},
		{"no token on GET", http.MethodGet, "/v1/deployments", "", "", 401},
		{"no token on metrics", http.MethodGet, "/metrics", "", "", 401},
		{"unknown deployment", http.MethodPost, "/v1/deployments/nope/rotations", admin, `{}`, 404},
		{"malformed body", http.MethodPost, post, admin, `{"emergency": "yes"}`, 400},
		{"unknown field", http.MethodPost, post, admin, `{"emergancy": true}`, 400},
		{"unknown rotation", http.MethodGet, "/v1/rotations/run-x", admin, "", 404},
		{"healthz without token", http.MethodGet, "/healthz", "", "", 200},
		{"readyz without token", http.MethodGet, "/readyz", "", "", 200},
		{"no token on audit", http.MethodGet, "/v1/audit", "", "", 401},
	} {
		if code, _ := d.request(t, c.method, c.path, c.token, c.body, &e); code != c.want {
			t.Errorf("%s: HTTP %d, want %d (%s)", c.name, code, c.want, e.Error)
		}
		if c.name == "malformed body" && !strings.Contains(e.Error, "emergency") {
			t.Errorf("400 message %q does not name the field", e.Error)
		}
	}

	// A dry run changes nothing.
	code, _ := d.request(t, http.MethodPost, post, admin, `{"dry_run": true}`, &e)
	if code != 202 {
		t.Fatalf("dry run: HTTP %d", code)
	}
	if run := d.waitRun(t, admin, e.ID); run.State != rotation.RunPlanned || run.Plan == nil || len(run.Plan.Steps) != 4 {
		t.Fatalf("dry run ended %s with plan %v", run.State, run.Plan)
	}
	if f.current().Version != 1 {
		t.Fatal("the dry run changed Vault")
	}

	// A rotation: 202 with a Location, then 409 naming it while it runs, then progress to the end.
	code, hdr := d.request(t, http.MethodPost, post, admin, `{}`, &e)
	if code != 202 || hdr.Get("Location") != "/v1/rotations/"+e.ID {
		t.Fatalf("rotation: HTTP %d, Location %q", code, hdr.Get("Location"))
	}
	id := e.ID
	if code, _ := d.request(t, http.MethodPost, post, admin, `{}`, &e); code != 409 || e.RunningRotationID != id {
		t.Errorf("second POST while busy: HTTP %d naming %q, want 409 naming %s", code, e.RunningRotationID, id)
	}
	run := d.waitRun(t, admin, id)
	if run.State != rotation.RunCompleted || run.Actor != "api:ops" || len(run.Nodes) != 2 || run.Report == nil || run.Seconds <= 0 {
		t.Fatalf("run %+v", run)
	}
	cur := f.current()
	if cur.Version != 2 {
		t.Fatalf("Vault version %d after the rotation", cur.Version)
	}
	f.assertKeys(cur.Key, f.k1)

	var deps string
	d.request(t, http.MethodGet, "/v1/deployments", reader, "", &deps)
	if !strings.Contains(deps, cur.Fingerprint) || !strings.Contains(deps, `"last_outcome": "completed"`) {
		t.Errorf("GET /v1/deployments lacks the fingerprint or the outcome:\n%s", deps)
	}
	// The security review ran at start: its findings at GET /v1/audit (read token) and in the metrics.
	var review struct {
		AuditedAt time.Time `json:"audited_at"`
		Findings  []struct {
			Node, Check, Severity string
		} `json:"findings"`
	}
	wait.Until(t, "the daemon's first security review", 30*time.Second, func() (bool, error) {
		code, _ := d.request(t, http.MethodGet, "/v1/audit", reader, "", &review)
		return code == 200 && !review.AuditedAt.IsZero(), fmt.Errorf("GET /v1/audit: HTTP %d, audited_at %v", code, review.AuditedAt)
	})
	envKeys := 0
	for _, x := range review.Findings {
		if x.Check == "keys_in_environment" && x.Severity == "medium" {
			envKeys++
		}
	}
	if envKeys != 2 {
		t.Errorf("GET /v1/audit: %d keys_in_environment findings, want 2 (one per env-mode node): %+v", envKeys, review.Findings)
	}
	var metrics string
	d.request(t, http.MethodGet, "/metrics", reader, "", &metrics)
	for _, want := range []string{
		`rotator_rotations_total{deployment="e2e",outcome="completed"} 1`,
		`rotator_key_age_seconds{deployment="e2e",slot="admin"}`,
		`rotator_rotations_in_flight 0`,
		`rotator_lease_held{deployment="e2e"} 0`,
		`rotator_phase_duration_seconds_count{deployment="e2e",phase="grace"} 1`,
		`rotator_last_success_timestamp_seconds{deployment="e2e"}`,
		`rotator_audit_findings{check="keys_in_environment",deployment="e2e",severity="medium"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A Vault token that can no longer act makes the daemon not ready; /readyz (no token) says so without Vault's
	// error text or address.
	vaultCall(t, f, "auth/token/revoke", `{"token": "`+daemonToken+`"}`)
	var ready map[string]string
	wait.Until(t, "/readyz to answer 503 once the daemon's Vault token is revoked", 10*time.Second, func() (bool, error) {
		code, _ := d.request(t, http.MethodGet, "/readyz", "", "", &ready)
		return code == http.StatusServiceUnavailable, fmt.Errorf("/readyz answers %d", code)
	})
	if ready["error"] != "vault not ready" || ready["reason"] != "token" {
		t.Errorf("/readyz with a revoked token: %v, want vault not ready, reason token", ready)
	}
	if body, _ := json.Marshal(ready); strings.Contains(string(body), strings.TrimPrefix(f.vault.Addr, "http://")) || strings.Contains(string(body), "denied") {
		t.Errorf("/readyz shows Vault's error: %s", body)
	}

	// Audit events: the log stream and the webhook both saw a key's whole life, signed.
	d.stop(t)
	kinds := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(d.out.String()))
	for sc.Scan() {
		var ev daemon.AuditEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event != "" {
			kinds[ev.Event]++
			if ev.Event == "audit_findings_changed" {
				continue // the security review's, by the daemon
			}
			if ev.Actor != "api:ops" || ev.RunID != id {
				t.Errorf("audit event %s: actor %q run %q", ev.Event, ev.Actor, ev.RunID)
			}
		}
	}
	for k, n := range map[string]int{"minted": 1, "staged": 2, "published": 1, "promoted": 2, "retired": 1, "audit_findings_changed": 1} {
		if kinds[k] != n {
			t.Errorf("log stream has %d %s events, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
	hook.mu.Lock()
	if len(hook.events) != 8 || hook.badSignatures != 0 {
		t.Errorf("webhook got %d events (%d badly signed), want 8 signed", len(hook.events), hook.badSignatures)
	}
	hook.mu.Unlock()
	f.mu.Lock()
	f.outputs.WriteString(d.out.String() + deps + metrics)
	f.mu.Unlock()
	f.assertNoLeak(cur.Key, f.journal().PendingKey)
}

// TestDaemonSchedules: a schedule due every few seconds (a short max age: cron schedules may not fire more often than
// once a minute) rotates twice in a row; a key older than its max age at start-up is rotated once, not in a loop.
func TestDaemonSchedules(t *testing.T) {
	t.Run("every few seconds", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{nodes: 2, mode: "file", grace: "0s", top: "daemon:\n  poll_interval: 200ms\n",
			extra: "    schedule: \"0 3 * * 0\"\n    max_age: 4s\n"})
		d := f.startDaemon(daemonOpts{})
		// The second max-age run starts no sooner than poll + ready_timeout (30 s) after the first began (the guard
		// against skewed clocks), and a rotation of two nodes can take 15 s on a loaded 2-core machine.
		wait.Until(t, "two scheduled rotations (Vault version 3)", 120*time.Second, func() (bool, error) {
			v := f.current().Version
			return v >= 3, fmt.Errorf("Vault version %d; the daemon's output:\n%s", v, d.out)
		})
		if code := d.stop(t); code != exitOK {
			t.Errorf("daemon exited %d", code)
		}
		f.assertKeys(f.current().Key, f.k1)
	})
	t.Run("max age at start-up", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", grace: "0s", top: "daemon:\n  poll_interval: 100ms\n",
			extra: "    max_age: 2s\n"})
		time.Sleep(2500 * time.Millisecond) // the key Vault holds is now older than its max age
		d := f.startDaemon(daemonOpts{})
		wait.Until(t, "the rotation of the key past its max age", 30*time.Second, func() (bool, error) {
			return f.current().Version >= 2, nil
		})
		time.Sleep(1500 * time.Millisecond) // fifteen more polls, the new key still younger than 2s
		if v := f.current().Version; v != 2 {
			t.Fatalf("Vault version %d, want exactly one rotation (2):\n%s", v, d.out.String())
		}
	})
}

// TestRemoteRotate: `rotator rotate --server` asks a running daemon, follows the rotation until it ends, and exits
// like a local rotation.
func TestRemoteRotate(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", grace: "0s", top: `daemon:
  tokens:
    - {name: ops, role: admin, file: admin.token}
`})
	token := filepath.Join(f.dir, "admin.token")
	if err := os.WriteFile(token, []byte(randomHex(16)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := f.startDaemon(daemonOpts{})
	var out, errOut strings.Builder
	code := run(context.Background(), []string{"rotate", "--server", d.url, "--token-file", token, "--deployment", deployment}, func(string) string { return "" }, &out, &errOut)
	if code != exitOK || !strings.Contains(out.String(), ": completed in") || !strings.Contains(out.String(), "promote") {
		t.Fatalf("remote rotate exited %d:\n%s%s", code, out.String(), errOut.String())
	}
	code = run(context.Background(), []string{"rotate", "--server", d.url, "--token-file", token, "--deployment", "nope"}, func(string) string { return "" }, &out, &errOut)
	if code != exitUsage {
		t.Errorf("unknown deployment: exit %d, want %d", code, exitUsage)
	}
	if v := f.current().Version; v != 2 {
		t.Errorf("Vault version %d, want 2", v)
	}
	rotated := f.current()

	// Drift: Vault's current key is one no node has. The remote rotation exits 4, as a local one does.
	stray, err := rotation.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Publish(context.Background(), deployment, rotation.SlotAdmin, rotation.KeyRecord{Key: stray, Since: time.Now(), RotationID: "drift-test"}, rotated.Version); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	code = run(context.Background(), []string{"rotate", "--server", d.url, "--token-file", token, "--deployment", deployment}, func(string) string { return "" }, &out, &errOut)
	if code != exitDrift || !strings.Contains(errOut.String(), "drift") {
		t.Errorf("remote rotate against drift exited %d, want %d:\n%s%s", code, exitDrift, out.String(), errOut.String())
	}
	f.mu.Lock()
	f.outputs.WriteString(out.String() + errOut.String())
	f.mu.Unlock()
	f.assertNoLeak(rotated.Key, stray)
}

// childToken makes a Vault token (a child of the root token, so with its policies) the test can revoke.
func childToken(t *testing.T, f *fixture) string {
	t.Helper()
	var created struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(vaultCall(t, f, "auth/token/create", `{"ttl": "1h"}`), &created); err != nil || created.Auth.ClientToken == "" {
		t.Fatalf("create a Vault token: %v", err)
	}
	return created.Auth.ClientToken
}

// vaultCall POSTs body to Vault's API path with the root token and returns the answer.
func vaultCall(t *testing.T, f *fixture, path, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.vault.Addr+"/v1/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", f.vault.Token)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("vault %s: HTTP %d: %s", path, resp.StatusCode, data)
	}
	return data
}
