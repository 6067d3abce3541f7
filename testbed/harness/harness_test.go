package harness

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

// TestThreeNodesEachAnswerOnlyItsOwnKey starts three stand-in containers on one test network, each with its own key,
// and proves with an authenticated call that each node accepts its key and refuses the other two; then that the
// harness removes everything it made.
func TestThreeNodesEachAnswerOnlyItsOwnKey(t *testing.T) {
	ctx := context.Background()
	h := NewT(t)
	image := h.StandinImageT(t)

	keys := make([]rotation.Key, 3)
	nodes := make([]*Node, 3)
	for i := range nodes {
		k, err := rotation.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		nodes[i] = h.StartNodeT(t, NodeSpec{Image: image, Env: []string{"QDRANT__SERVICE__API_KEY=" + k.Reveal()}})
	}
	for i, n := range nodes {
		if !strings.HasPrefix(n.URL, "http://127.0.0.1:") {
			t.Errorf("node %d URL %q is not on 127.0.0.1", i, n.URL)
		}
		for j, k := range keys {
			status := getCollections(t, n.URL, k.Reveal())
			want := http.StatusUnauthorized
			if i == j {
				want = http.StatusOK
			}
			if status != want {
				t.Errorf("node %d with key of node %d: status %d, want %d", i, j, status, want)
			}
		}
		if status := getCollections(t, n.URL, ""); status != http.StatusUnauthorized {
			t.Errorf("node %d without a key: status %d, want 401", i, status)
		}
	}

	// Closing the harness removes the containers and the network.
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eng := NewT(t).Engine
	left, err := eng.Containers(ctx, Label+"="+h.run)
	if err != nil {
		t.Fatal(err)
	}
	nets, err := eng.Networks(ctx, Label+"="+h.run)
	if err != nil {
		t.Fatal(err)
	}
	if len(left)+len(nets) != 0 {
		t.Errorf("after Close: %d containers and %d networks of the run are left", len(left), len(nets))
	}
}

// TestSweepRemovesLeftoversOfDeadRuns labels a network as made by a process that no longer exists and checks that
// the next harness removes it, while objects of live processes stay.
func TestSweepRemovesLeftoversOfDeadRuns(t *testing.T) {
	ctx := context.Background()
	h := NewT(t)
	deadPID := "999999999"
	id, err := h.Engine.CreateNetwork(ctx, "qdrant-testbed-leftover-"+h.run, map[string]string{Label: "crashed", ownerLabel: deadPID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Engine.RemoveNetwork(ctx, id) })
	if err := Sweep(ctx, h.Engine, false); err != nil {
		t.Fatal(err)
	}
	if left, _ := h.Engine.Networks(ctx, Label+"=crashed"); len(left) != 0 {
		t.Errorf("leftover network of a dead process survived the sweep")
	}
	if mine, _ := h.Engine.Networks(ctx, Label+"="+h.run); len(mine) != 1 {
		t.Errorf("the live run's network was swept (found %d)", len(mine))
	}
}

func getCollections(t *testing.T, base, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/collections", nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("api-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(fmt.Errorf("GET /collections: %w", err))
	}
	resp.Body.Close()
	return resp.StatusCode
}
