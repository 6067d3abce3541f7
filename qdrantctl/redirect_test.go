package qdrantctl

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

// A node that answers with a redirect never gets the api-key header sent on to where the redirect points.
func TestProbeDoesNotFollowRedirects(t *testing.T) {
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("api-key") != "" {
			leaked.Store(true)
		}
	}))
	defer elsewhere.Close()
	node := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/collections", http.StatusFound))
	defer node.Close()
	n, err := NewNode(nil, NodeOptions{Container: "q0", Mode: ModeEnv, URL: node.URL})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := rotation.NewKey()
	err = n.Probe(context.Background(), key)
	if err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
		t.Errorf("probe of a redirecting node: %v, want an error saying redirects are not followed", err)
	}
	if leaked.Load() {
		t.Error("the api-key header was sent where the redirect pointed")
	}
}
