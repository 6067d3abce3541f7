package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// TestRemoteRotateExitCodes: `rotate --server` exits like a local rotation for every outcome the daemon reports:
// drift 4, cluster unsafe 6, rolled back 5, locked 3, other failures 1. The daemon's API is played by a handler
// that answers as daemon/api.go does (its error_class); TestRemoteRotate runs the real daemon.
func TestRemoteRotateExitCodes(t *testing.T) {
	token := filepath.Join(t.TempDir(), "ops.token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		state rotation.RunState
		class string
		code  int
	}{
		{rotation.RunCompleted, "", exitOK},
		{rotation.RunPlanned, "", exitOK},
		{rotation.RunFailed, "drift", exitDrift},
		{rotation.RunFailed, "cluster_unsafe", exitUnsafe},
		{rotation.RunRolledBack, "rolled_back", exitRolledBack},
		{rotation.RunLocked, "locked", exitLocked},
		{rotation.RunFailed, "failed", exitError},
		{rotation.RunFailed, "", exitError}, // a daemon that does not classify
	} {
		api := http.NewServeMux()
		api.HandleFunc("POST /v1/deployments/prod/rotations", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"id":"run-1"}`))
		})
		api.HandleFunc("GET /v1/rotations/run-1", func(w http.ResponseWriter, _ *http.Request) {
			body := map[string]any{"id": "run-1", "deployment": "prod", "state": c.state, "started": time.Unix(0, 0),
				"error": "deployment prod: " + string(c.state) + " " + c.class}
			if c.class != "" {
				body["error_class"] = c.class
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(body)
		})
		srv := httptest.NewServer(api)
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"rotate", "--server", srv.URL, "--token-file", token, "--deployment", "prod"}, func(string) string { return "" }, &out, &errOut)
		srv.Close()
		if code != c.code {
			t.Errorf("%s/%s: exit %d, want %d\n%s%s", c.state, c.class, code, c.code, out.String(), errOut.String())
		}
		if c.code != exitOK && strings.Count(errOut.String(), "deployment prod") != 1 {
			t.Errorf("%s/%s: stderr %q, want the daemon's error once", c.state, c.class, errOut.String())
		}
	}
}
