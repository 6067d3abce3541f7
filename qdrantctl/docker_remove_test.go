package qdrantctl

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/docker/docker/client"
)

// TestRecoverWaitsForARemovalUnderWay: the engine answers 409 "removal ... is already in progress" when another
// caller (the last Recreate's background removal of NAME-rotator-old, or another rotator) is removing the same
// container. Recover then waits for it to be gone instead of failing the node step (seen under load when two Applies
// follow each other on one node).
func TestRecoverWaitsForARemovalUnderWay(t *testing.T) {
	var inspects atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Api-Version", "1.45")
		p := r.URL.Path
		switch {
		case strings.HasSuffix(p, "/_ping"):
			_, _ = w.Write([]byte("OK"))
		case r.Method == http.MethodDelete && strings.HasSuffix(p, "/containers/n-rotator-new"):
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"message":"removal of container n-rotator-new is already in progress"}`))
		case r.Method == http.MethodGet && strings.HasSuffix(p, "/containers/n-rotator-new/json"):
			if inspects.Add(1) < 3 { // still there twice, then gone
				_, _ = w.Write([]byte(`{"Id":"abc","Name":"/n-rotator-new","State":{"Status":"removing"}}`))
				return
			}
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"No such container: n-rotator-new"}`))
		case r.Method == http.MethodGet && strings.HasSuffix(p, "/containers/n-rotator-old/json"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"No such container: n-rotator-old"}`))
		default:
			t.Errorf("unexpected call %s %s", r.Method, p)
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	e, err := dial(context.Background(), client.WithHost("tcp://"+srv.Listener.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.RecoverRecreate(context.Background(), "n"); err != nil {
		t.Fatalf("recover while another removal of n-rotator-new is under way: %v", err)
	}
	if n := inspects.Load(); n != 3 {
		t.Errorf("inspected n-rotator-new %d times, want 3 (until it was gone)", n)
	}
}
