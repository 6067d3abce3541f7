package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// An open node (it accepts a key never issued) is a failure in GET /v1/deployments and in rotator_node_open.
func TestOpenNodeShowsInDeploymentsAndMetrics(t *testing.T) {
	key, _ := rotation.NewKey()
	fp, err := rotation.NewFingerprinter([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	openNode := rotationtest.NewNode("q0", rotation.Slots{}) // no key: it accepts every key, as Qdrant started without one
	rot, err := rotation.New(storeWith(t, "prod", rotation.KeyRecord{Key: key, Fingerprint: fp.Of(key), Since: time.Now()}),
		[]rotation.Node{openNode}, rotation.Options{Deployment: "prod", Fingerprints: fp, ReadyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr := rotation.NewManager(ctx, nil, rotation.Hooks{})
	sched, err := rotation.NewSchedule("prod", rotation.ScheduleSpec{MaxAge: 1000 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mgr.Add(rot, &sched)
	mgr.RunSchedules(5 * time.Millisecond)
	tokens := NewTokens([]TokenSource{{Name: "ops", Admin: true, Read: func(context.Context) (string, error) { return "adm", nil }}}, time.Minute, nil)
	srv := httptest.NewServer(NewHandler(Options{Manager: mgr, Tokens: tokens, Metrics: NewMetrics(mgr).Handler(), Ready: func(context.Context) error { return nil }}))
	defer srv.Close()
	get := func(path string) string {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer adm")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(strings.Join(strings.Fields(get("/v1/deployments")), ""), `"open_nodes":["q0"]`) {
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/deployments never named q0 open: %s", get("/v1/deployments"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m := get("/metrics"); !strings.Contains(m, `rotator_node_open{deployment="prod",node="q0"} 1`) {
		t.Errorf("metrics lack the open node:\n%s", m)
	}
	cancel()
	mgr.Wait()
}
