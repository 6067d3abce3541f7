package daemon

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// TestQueuedRunIsVisible: with max_parallel 1 and one run holding the slot, a second deployment's run is "queued" in
// GET /v1/rotations/{id} and GET /v1/rotations, a second request for it gets the 409 naming it, and the metrics
// count it queued (not in flight, no lease held); the daemon's goroutines and RSS are exported too.
func TestQueuedRunIsVisible(t *testing.T) {
	fp, err := rotation.NewFingerprinter([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan rotation.Run, 2)
	mgr := rotation.NewManager(ctx, nil, rotation.Hooks{Finished: func(r rotation.Run) { finished <- r }})
	mgr.SetMaxParallel(1)
	gate := make(chan struct{})
	for _, dep := range []string{"alpha", "beta"} {
		key, _ := rotation.NewKey()
		rot, err := rotation.New(storeWith(t, dep, rotation.KeyRecord{Key: key, Fingerprint: fp.Of(key), Since: time.Unix(0, 0)}),
			[]rotation.Node{&gatedNode{Node: newRefusingNode(t), gate: gate}},
			rotation.Options{Deployment: dep, Fingerprints: fp, ReadyTimeout: time.Second, Observe: mgr.Observer(dep)})
		if err != nil {
			t.Fatal(err)
		}
		mgr.Add(rot, nil)
	}
	const tok = "admin-0123456789"
	tokens := NewTokens([]TokenSource{{Name: "ops", Admin: true, Read: func(context.Context) (string, error) { return tok, nil }}}, time.Hour, nil)
	srv := httptest.NewServer(NewHandler(Options{Manager: mgr, Tokens: tokens, Metrics: NewMetrics(mgr).Handler(),
		Ready: func(context.Context) error { return nil }}))
	defer srv.Close()

	first, err := mgr.Start("alpha", rotation.Trigger{Actor: "schedule"})
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := send(t, "POST", srv.URL+"/v1/deployments/beta/rotations", tok, `{}`)
	var started struct{ ID string }
	if err := json.Unmarshal(body, &started); code != 202 || err != nil {
		t.Fatalf("POST beta: HTTP %d %s", code, body)
	}
	var run rotation.Run
	code, _, body = send(t, "GET", srv.URL+"/v1/rotations/"+started.ID, tok, "")
	if err := json.Unmarshal(body, &run); code != 200 || err != nil || run.State != rotation.RunQueued || !run.RunningSince.IsZero() {
		t.Errorf("GET the queued run: HTTP %d, state %q, running since %s: %s", code, run.State, run.RunningSince, body)
	}
	code, _, body = send(t, "POST", srv.URL+"/v1/deployments/beta/rotations", tok, `{}`)
	if code != 409 || !strings.Contains(string(body), started.ID) {
		t.Errorf("a second POST while queued: HTTP %d %s, want 409 naming %s", code, body, started.ID)
	}
	var list struct{ Rotations []rotation.Run }
	code, _, body = send(t, "GET", srv.URL+"/v1/rotations", tok, "")
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list.Rotations) != 2 ||
		list.Rotations[0].ID != first || list.Rotations[1].State != rotation.RunQueued {
		t.Errorf("GET /v1/rotations: HTTP %d %s", code, body)
	}
	_, _, body = send(t, "GET", srv.URL+"/metrics", tok, "")
	for _, want := range []string{
		"rotator_rotations_queued 1", "rotator_rotations_in_flight 1",
		`rotator_lease_held{deployment="beta"} 0`, "go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	close(gate)
	for range 2 {
		select {
		case r := <-finished:
			if r.State == rotation.RunQueued || r.State == rotation.RunRunning {
				t.Errorf("finished run in state %s", r.State)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the runs did not end")
		}
	}
	cancel()
	mgr.Wait()
}
