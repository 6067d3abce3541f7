package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/daemon"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/wait"
	"github.com/qdrantrotator/rotator/watch"
)

// TestDaemonWatchesDeniedRequests: nodes with Qdrant's audit log on; after a rotation through the daemon, one client
// keeps the retired key and hammers a node. The daemon reads the audit logs: the client's address shows as a
// straggler in GET /v1/deployments and in the completed run, rotator_qdrant_denied_requests_total counts every
// refusal (and none of the daemon's own probes with keys never issued), rotator_stragglers is 1, the webhook gets a
// signed denied_requests_burst and a stragglers event, and no key appears anywhere.
func TestDaemonWatchesDeniedRequests(t *testing.T) {
	secret := []byte("webhook-secret-for-watch-tests")
	hook := newWebhookSink(t, secret)

	const threshold, hammer = 10, 30
	audit := []string{"QDRANT__AUDIT__ENABLED=true"}
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", env: map[int][]string{0: audit, 1: audit}, top: fmt.Sprintf(`daemon:
  poll_interval: 200ms
  denied_alert: {threshold: %d, window: 5m}
  tokens:
    - {name: ops, role: admin, file: admin.token}
  webhooks:
    - {url: %s, secret_file: hook.secret}
`, threshold, hook.URL)})
	admin := randomHex(16)
	for name, v := range map[string]string{"admin.token": admin, "hook.secret": string(secret)} {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := f.startDaemon(daemonOpts{})
	var started struct{ ID string }
	if code, _ := d.request(t, http.MethodPost, "/v1/deployments/"+deployment+"/rotations", admin, `{}`, &started); code != 202 {
		t.Fatalf("rotation: HTTP %d", code)
	}
	if run := d.waitRun(t, admin, started.ID); run.State != rotation.RunCompleted {
		t.Fatalf("rotation ended %s: %s", run.State, run.Error)
	}
	cur := f.current()
	f.assertKeys(cur.Key) // with the current key only: nothing refused

	// One client keeps the retired key and hammers the first node.
	target := f.names[0]
	u := f.url(target) + "/collections"
	for i := 0; i < hammer; i++ {
		if s := f.call(http.MethodGet, u, f.k1.Reveal(), ""); s != http.StatusUnauthorized {
			t.Fatalf("the retired key: HTTP %d, want 401", s)
		}
	}

	var stragglers []watch.Straggler
	var deps string
	wait.Until(t, "the straggler in GET /v1/deployments", 30*time.Second, func() (bool, error) {
		var body struct {
			Deployments []struct {
				Name       string            `json:"name"`
				Stragglers []watch.Straggler `json:"stragglers"`
			} `json:"deployments"`
		}
		d.request(t, http.MethodGet, "/v1/deployments", admin, "", &deps)
		if err := json.Unmarshal([]byte(deps), &body); err != nil || len(body.Deployments) != 1 {
			return false, fmt.Errorf("GET /v1/deployments: %v: %s", err, deps)
		}
		stragglers = body.Deployments[0].Stragglers
		return len(stragglers) == 1 && stragglers[0].Denied == hammer, fmt.Errorf("stragglers %+v", stragglers)
	})
	s := stragglers[0]
	if s.Node != target || s.Address == "" || s.LastSeen.IsZero() {
		t.Errorf("straggler %+v: want node %s with an address and a time", s, target)
	}
	t.Logf("straggler: address %s, node %s, %d refused requests", s.Address, s.Node, s.Denied)

	var run struct {
		Stragglers []watch.Straggler `json:"stragglers"`
	}
	d.request(t, http.MethodGet, "/v1/rotations/"+started.ID, admin, "", &run)
	if len(run.Stragglers) != 1 || run.Stragglers[0].Address != s.Address {
		t.Errorf("GET /v1/rotations/%s: stragglers %+v, want %s", started.ID, run.Stragglers, s.Address)
	}

	var metrics string
	d.request(t, http.MethodGet, "/metrics", admin, "", &metrics)
	denied := map[string]float64{}
	for _, line := range strings.Split(metrics, "\n") {
		for _, n := range f.names {
			prefix := `rotator_qdrant_denied_requests_total{deployment="e2e",node="` + n + `"} `
			if v, ok := strings.CutPrefix(line, prefix); ok {
				denied[n], _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	if denied[target] != hammer || denied[f.names[1]] != 0 {
		t.Errorf("rotator_qdrant_denied_requests_total %v, want %d at %s and 0 at %s (the daemon's own probes are not counted)",
			denied, hammer, target, f.names[1])
	}
	if !strings.Contains(metrics, `rotator_stragglers{deployment="e2e"} 1`) {
		t.Error("/metrics lacks rotator_stragglers{deployment=\"e2e\"} 1")
	}
	t.Logf("denied counted: %v", denied)

	wait.Until(t, "the burst and stragglers events at the webhook", 30*time.Second, func() (bool, error) {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		kinds := map[string]daemon.AuditEvent{}
		for _, ev := range hook.events {
			kinds[ev.Event] = ev
		}
		b, st := kinds["denied_requests_burst"], kinds["stragglers"]
		return b.Address == s.Address && b.Node == target && b.Count == threshold+1 && b.Window == "5m0s" &&
			st.RunID == started.ID && st.Stragglers != nil && len(*st.Stragglers) == 1, fmt.Errorf("webhook events %+v", hook.events)
	})
	hook.mu.Lock()
	if hook.badSignatures != 0 {
		t.Errorf("%d webhook deliveries badly signed", hook.badSignatures)
	}
	bodies := hook.bodies.String()
	hook.mu.Unlock()

	d.stop(t)
	f.mu.Lock()
	f.outputs.WriteString(d.out.String() + deps + metrics + bodies)
	f.mu.Unlock()
	f.assertNoLeak(cur.Key)
}

// TestDaemonWatchesClusterAuditLog: in a cluster, POST /audit/logs merges every peer's entries, so the daemon reads
// one node and counts under node "cluster"; while a peer is down the merged read fails and is tried again at the
// next poll without a warning, and the refusals made meanwhile are counted once the peer is back.
func TestDaemonWatchesClusterAuditLog(t *testing.T) {
	audit := []string{"QDRANT__AUDIT__ENABLED=true"}
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", cluster: true, env: map[int][]string{0: audit, 1: audit},
		extra: "    cluster: {internal_auth: false}\n", top: `daemon:
  poll_interval: 200ms
  tokens:
    - {name: ops, role: admin, file: admin.token}
`})
	admin := randomHex(16)
	if err := os.WriteFile(filepath.Join(f.dir, "admin.token"), []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := f.startDaemon(daemonOpts{})
	wrong := randomHex(16)
	refuse := func(node string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if s := f.call(http.MethodGet, f.url(node)+"/collections", wrong, ""); s != http.StatusUnauthorized {
				t.Fatalf("a wrong key at %s: HTTP %d", node, s)
			}
		}
	}
	counted := func(want float64) {
		t.Helper()
		wait.Until(t, fmt.Sprintf("%v refusals counted under node cluster", want), 30*time.Second, func() (bool, error) {
			var metrics string
			d.request(t, http.MethodGet, "/metrics", admin, "", &metrics)
			line := `rotator_qdrant_denied_requests_total{deployment="e2e",node="cluster"} `
			for _, l := range strings.Split(metrics, "\n") {
				if v, ok := strings.CutPrefix(l, line); ok {
					got, _ := strconv.ParseFloat(v, 64)
					if got > want {
						t.Fatalf("%v refusals counted, want %v (counted twice?)", got, want)
					}
					return got == want, fmt.Errorf("%v counted", got)
				}
			}
			return false, fmt.Errorf("no series %s", line)
		})
	}
	refuse(f.names[0], 3)
	refuse(f.names[1], 2)
	counted(5)

	ctx := context.Background()
	if _, err := f.h.Engine.StopContainer(ctx, f.names[1], 10*time.Second); err != nil {
		t.Fatal(err)
	}
	refuse(f.names[0], 4) // logged by node 0; the merged read fails while its peer is down
	if s := f.call(http.MethodPost, f.url(f.names[0])+"/audit/logs", f.current().Key.Reveal(), `{}`); s != http.StatusInternalServerError {
		t.Errorf("POST /audit/logs with a peer down: HTTP %d, want 500", s)
	}
	if err := f.h.Engine.StartContainer(ctx, f.names[1]); err != nil {
		t.Fatal(err)
	}
	counted(9)
	d.stop(t)
	if out := d.out.String(); strings.Contains(out, "audit log watch") {
		t.Errorf("the daemon warned about the peer down:\n%s", out)
	}
}
