package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// TestBearerSchemeAnyCase: the scheme name is case-insensitive (RFC 7235); anything else is 401.
func TestBearerSchemeAnyCase(t *testing.T) {
	tokens := NewTokens([]TokenSource{{Name: "grafana", Read: func(context.Context) (string, error) { return "tok-123", nil }}}, time.Minute, nil)
	srv := httptest.NewServer(NewHandler(Options{Tokens: tokens, Ready: func(context.Context) error { return nil },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}))
	defer srv.Close()
	for header, want := range map[string]int{
		"Bearer tok-123":   200,
		"bearer tok-123":   200,
		"BEARER tok-123":   200,
		"bEaReR  tok-123 ": 200,
		"Bearer tok-12":    401,
		"Basic tok-123":    401,
		"Bearertok-123":    401,
		"Bearer ":          401,
		"tok-123":          401,
		"":                 401,
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Authorization %q: HTTP %d, want %d", header, resp.StatusCode, want)
		}
	}
}

// TestReadyzHidesVaultErrors: /readyz (no token) says "vault not ready" and a reason class, never Vault's error
// text or address; the detail goes to the log once per change.
func TestReadyzHidesVaultErrors(t *testing.T) {
	var mu sync.Mutex
	var readyErr error
	var logs strings.Builder
	logger := slogTo(&logs)
	srv := httptest.NewServer(NewHandler(Options{Logger: logger, Tokens: NewTokens(nil, time.Minute, nil), Metrics: http.NotFoundHandler(),
		Ready: func(context.Context) error { mu.Lock(); defer mu.Unlock(); return readyErr }}))
	defer srv.Close()
	get := func() (int, map[string]string) {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	vaultErr := errors.New(`Get "https://vault.internal:8200/v1/secret/data/qdrant/rotator/journal/prod": status 403: permission denied`)
	for _, c := range []struct {
		err        error
		code       int
		reason     string
		wantStatus string
	}{
		{nil, 200, "", "ready"},
		{&NotReadyError{Reason: "token", Err: vaultErr}, 503, "token", ""},
		{&NotReadyError{Reason: "sealed", Err: errors.New("vault is sealed")}, 503, "sealed", ""},
		{fmt.Errorf("vault: %w", vaultErr), 503, "unavailable", ""},
		{nil, 200, "", "ready"},
	} {
		mu.Lock()
		readyErr = c.err
		mu.Unlock()
		code, body := get()
		if code != c.code || body["reason"] != c.reason || body["status"] != c.wantStatus {
			t.Errorf("ready error %v: HTTP %d %v, want %d reason %q", c.err, code, body, c.code, c.reason)
		}
		if c.err != nil && body["error"] != "vault not ready" {
			t.Errorf("ready error %v: body %v, want error \"vault not ready\"", c.err, body)
		}
		for _, v := range body {
			if strings.Contains(v, "vault.internal") || strings.Contains(v, "permission denied") {
				t.Errorf("/readyz shows Vault's error: %v", body)
			}
		}
	}
	if !strings.Contains(logs.String(), "permission denied") || !strings.Contains(logs.String(), "ready again") {
		t.Errorf("the log lacks the readiness changes:\n%s", logs.String())
	}
}

// TestRunErrorClass: GET /v1/rotations/{id} tells a drift from other failures, so `rotate --server` exits 4 as a
// local rotation does. The run is real: a Manager drives a Rotator whose node refuses the store's key.
func TestRunErrorClass(t *testing.T) {
	key, _ := rotation.NewKey()
	fp, err := rotation.NewFingerprinter([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	rot, err := rotation.New(storeWith(t, "prod", rotation.KeyRecord{Key: key, Fingerprint: fp.Of(key), Since: time.Unix(0, 0)}),
		[]rotation.Node{newRefusingNode(t)}, rotation.Options{Deployment: "prod", Fingerprints: fp, ReadyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr := rotation.NewManager(ctx, nil, rotation.Hooks{})
	mgr.Add(rot, nil)
	tokens := NewTokens([]TokenSource{{Name: "ops", Admin: true, Read: func(context.Context) (string, error) { return "adm", nil }}}, time.Minute, nil)
	srv := httptest.NewServer(NewHandler(Options{Manager: mgr, Tokens: tokens, Metrics: http.NotFoundHandler(), Ready: func(context.Context) error { return nil }}))
	defer srv.Close()
	id, err := mgr.Start("prod", rotation.Trigger{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/rotations/"+id, nil)
		req.Header.Set("Authorization", "Bearer adm")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			State      rotation.RunState `json:"state"`
			Error      string            `json:"error"`
			ErrorClass string            `json:"error_class"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body.State != rotation.RunRunning {
			if body.State != rotation.RunFailed || body.ErrorClass != rotation.ClassDrift {
				t.Errorf("run ended %s, error_class %q (%s); want failed, drift", body.State, body.ErrorClass, body.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run did not end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mgr.Wait()
}

// storeWith is a store whose deployment dep has rec as its current admin record (version 1).
func storeWith(tb testing.TB, dep string, rec rotation.KeyRecord) *rotationtest.Store {
	tb.Helper()
	s := rotationtest.NewStore()
	if _, err := s.Publish(context.Background(), dep, rotation.SlotAdmin, rec, 0); err != nil {
		tb.Fatal(err)
	}
	return s
}

// newRefusingNode is node q0 running a key of its own, which no test sends: it refuses the store's key (drift).
func newRefusingNode(tb testing.TB) *rotationtest.Node {
	tb.Helper()
	own, err := rotation.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	return rotationtest.NewNode("q0", rotation.Slots{APIKey: own})
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
