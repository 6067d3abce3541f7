package main

import (
	"errors"

	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// clusterClient plays an app against a stand-in cluster: it follows Vault's consumer path, round-robins over the
// peers, writes one point per call with wait=true and reads a count, and remembers every acknowledged point.
type clusterClient struct {
	f *fixture

	mu         sync.Mutex
	acked      []int
	requests   int
	rejections []string
	stop       chan struct{}
	done       chan struct{}
}

func (f *fixture) startClusterClient() *clusterClient {
	c := &clusterClient{f: f, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for i := 1; ; i++ {
			select {
			case <-c.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			cur, err := f.store.ReadCurrent(context.Background(), deployment, rotation.SlotAdmin)
			if err != nil {
				continue
			}
			name := f.names[i%len(f.names)]
			u, err := f.nodeURL(context.Background(), name)
			if err != nil {
				continue
			}
			for _, call := range []struct{ method, path, body string }{
				{http.MethodPut, "/collections/c/points?wait=true", fmt.Sprintf(`{"points":[{"id":%d,"vector":[0.5,0.5]}]}`, i)},
				{http.MethodPost, "/collections/c/points/count", `{"exact":true}`},
			} {
				req, _ := http.NewRequest(call.method, u+call.path, strings.NewReader(call.body))
				req.Header.Set("api-key", cur.Key.Reveal())
				req.Header.Set("Content-Type", "application/json")
				resp, err := f.client.Do(req)
				c.mu.Lock()
				c.requests++
				if err == nil {
					resp.Body.Close()
					switch {
					case resp.StatusCode == 401 || resp.StatusCode == 403:
						c.rejections = append(c.rejections, fmt.Sprintf("%s %s: %d", name, call.method, resp.StatusCode))
					case resp.StatusCode == 200 && call.method == http.MethodPut:
						c.acked = append(c.acked, i)
					}
				}
				c.mu.Unlock()
			}
		}
	}()
	return c
}

func (c *clusterClient) Stop() {
	close(c.stop)
	<-c.done
}

// setupCollection creates collection c (shard_number 1, replication_factor rf) through the first peer and waits
// until every peer reports all its replicas Active.
func (f *fixture) setupCollection(rf int) {
	f.t.Helper()
	body := fmt.Sprintf(`{"vectors":{"size":2,"distance":"Dot"},"shard_number":1,"replication_factor":%d,"write_consistency_factor":1}`, rf)
	if s := f.call(http.MethodPut, f.url(f.names[0])+"/collections/c", f.k1.Reveal(), body); s != 200 {
		f.t.Fatalf("create collection: HTTP %d", s)
	}
	f.waitActive(f.k1, 30*time.Second)
}

// waitActive waits until every peer answers /readyz 200 and sees every replica of c Active with no transfers (the
// settle condition of Qdrant's rolling-restart procedure, the same the rotator waits for).
func (f *fixture) waitActive(key rotation.Key, bound time.Duration) {
	f.t.Helper()
	wait.UntilEvery(f.t, "the cluster to settle", bound, 20*time.Millisecond, func() (bool, error) {
		bad := f.replicaStates(key)
		return bad == "", errors.New(bad)
	})
}

// replicaStates returns "" when every peer answers /readyz 200 and sees every replica of c Active, else what it saw.
func (f *fixture) replicaStates(key rotation.Key) string {
	var bad []string
	for _, name := range f.names {
		u, err := f.nodeURL(context.Background(), name)
		if err != nil {
			bad = append(bad, name+": "+err.Error())
			continue
		}
		if resp, err := f.client.Get(u + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
			if err == nil {
				resp.Body.Close()
			}
			bad = append(bad, name+" not ready")
			continue
		} else {
			resp.Body.Close()
		}
		req, _ := http.NewRequest(http.MethodGet, u+"/collections/c/cluster", nil)
		req.Header.Set("api-key", key.Reveal())
		resp, err := f.client.Do(req)
		if err != nil {
			bad = append(bad, name+": "+err.Error())
			continue
		}
		var body struct {
			Result struct {
				Local     []struct{ State string } `json:"local_shards"`
				Remote    []struct{ State string } `json:"remote_shards"`
				Transfers []json.RawMessage        `json:"shard_transfers"`
			} `json:"result"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		for _, s := range append(body.Result.Local, body.Result.Remote...) {
			if s.State != "Active" {
				bad = append(bad, name+" sees "+s.State)
			}
		}
		if len(body.Result.Transfers) > 0 {
			bad = append(bad, name+" has transfers")
		}
	}
	return strings.Join(bad, "; ")
}

// TestClusterRotation: a 3-peer stand-in cluster with a collection of replication factor 2; during a full scheduled
// rotation a client that follows Vault's consumer path, round-robins over the peers, writes with wait=true and reads
// sees zero rejections, and every acknowledged point is present afterwards; with enforce_internal_auth off (2
// restarts per peer) and on (3).
func TestClusterRotation(t *testing.T) {
	for _, internal := range []bool{false, true} {
		t.Run(fmt.Sprintf("enforce_internal_auth=%v", internal), func(t *testing.T) {
			extra := "    cluster: {internal_auth: false}\n"
			if internal {
				extra = "    cluster: {internal_auth: true}\n"
			}
			f := newFixture(t, fixtureOpts{nodes: 3, mode: "env", grace: "1s", cluster: true, internalAuth: internal, extra: extra})
			f.setupCollection(2)
			c := f.startClusterClient()
			code, out := f.rotator("rotate")
			c.Stop()
			if code != exitOK {
				t.Fatalf("rotate exited %d:\n%s", code, out)
			}
			c.mu.Lock()
			acked, requests, rejections := append([]int(nil), c.acked...), c.requests, c.rejections
			c.mu.Unlock()
			t.Logf("client: %d requests, %d acknowledged writes, %d rejections", requests, len(acked), len(rejections))
			if len(rejections) != 0 {
				t.Errorf("rejections: %v", rejections)
			}
			var order []string
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "restarting:") {
					for i, name := range f.names {
						if strings.Contains(line, name) {
							order = append(order, fmt.Sprintf("peer%d", i))
						}
					}
				}
			}
			t.Logf("restart order (peer0 founded the cluster and leads it at the start): %v", order)
			if len(order) < 3 || order[2] != "peer0" {
				t.Errorf("the leader did not restart last in the first pass: %v", order)
			}
			// In every pass, the node restarted last is the leader of that moment (a restart may move the lead).
			lines := strings.Split(out, "\n")
			for i := len(lines) - 1; i >= 0; i-- {
				if strings.Contains(lines[i], "restarting:") {
					fields := strings.Fields(lines[i])
					node := fields[4]
					if i == 0 || !strings.Contains(lines[i-1], node) || !strings.Contains(lines[i-1], "the cluster's leader") {
						t.Errorf("the last restart (%s) was not announced as the leader's:\n%s", node, out)
					}
					break
				}
			}
			restarts := strings.Count(out, "restarting:")
			if want := map[bool]int{false: 6, true: 9}[internal]; restarts != want {
				t.Errorf("%d restarts, want %d", restarts, want)
			}
			cur := f.current()
			f.waitActive(cur.Key, 30*time.Second)
			f.assertPointsEverywhere(cur.Key, acked)
			f.assertKeys(cur.Key, f.k1)
		})
	}
}

// TestClusterPlanFollowsTheNodesInternalAuth: the peers enforce internal auth but the deployment says
// internal_auth: false. The rotator reads the setting from each node and uses the 3-restart plan anyway (the
// 2-restart plan would have promoted peers refuse their peers' old primary key and replicas turn Dead): the dry run
// says so, and the rotation completes (a broken replication would not settle) with no client rejection.
func TestClusterPlanFollowsTheNodesInternalAuth(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 3, mode: "env", grace: "0s", cluster: true, internalAuth: true,
		readyTimeout: "20s", extra: "    cluster: {internal_auth: false}\n"})
	f.setupCollection(2)
	if code, out := f.rotator("rotate", "--dry-run"); code != exitOK || !strings.Contains(out, "3 restarts per node") {
		t.Fatalf("dry run exited %d, want the 3-restart plan:\n%s", code, out)
	}
	c := f.startClusterClient() // writes are what the peers replicate to each other
	code, out := f.rotator("rotate")
	c.Stop()
	if code != exitOK || strings.Count(out, "restarting:") != 9 {
		t.Errorf("rotate exited %d with %d restarts, want 0 and 9:\n%s", code, strings.Count(out, "restarting:"), out)
	}
	f.waitActive(f.current().Key, 30*time.Second) // replication kept working: every replica Active again
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rejections) != 0 {
		t.Errorf("client rejections: %v", c.rejections)
	}
}

// TestClusterPreflightAndRollback: replication factor 1 and a peer down are refused before anything changes; a
// peer that does not come back within its bound rolls the cluster back to Vault's current key with every replica
// Active.
func TestClusterPreflightAndRollback(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 3, mode: "env", grace: "0s", cluster: true,
		env: map[int][]string{1: {"STANDIN_FAIL_IF_SET=service.alt_api_key"}}, readyTimeout: "10s", extra: "    cluster: {}\n"})
	f.setupCollection(1)
	code, out := f.rotator("rotate")
	if code != exitUnsafe || !strings.Contains(out, "replication_factor 1 would be unavailable while their node restarts: c") {
		t.Fatalf("rf 1: exit %d, want %d:\n%s", code, exitUnsafe, out)
	}
	if s := f.call(http.MethodDelete, f.url(f.names[0])+"/collections/c", f.k1.Reveal(), ""); s != 200 {
		t.Fatalf("delete collection: HTTP %d", s)
	}
	f.setupCollection(2)

	// A peer that refuses to start with the staged key: rollback, the cluster back on Vault's key, replicas Active.
	code, out = f.rotator("rotate")
	if code != exitRolledBack {
		t.Fatalf("failing peer: exit %d, want %d:\n%s", code, exitRolledBack, out)
	}
	if cur := f.current(); cur.Version != 1 {
		t.Errorf("Vault moved to version %d", cur.Version)
	}
	f.assertKeys(f.k1)
	f.waitActive(f.k1, 30*time.Second)

	// A peer down before the start: refused, nothing changed.
	if _, err := f.h.Engine.StopContainer(context.Background(), f.names[2], 10*time.Second); err != nil {
		t.Fatal(err)
	}
	code, out = f.rotator("rotate")
	if code != exitDrift || !strings.Contains(out, f.names[2]) {
		t.Errorf("peer down: exit %d, want %d naming %s:\n%s", code, exitDrift, f.names[2], out)
	}
}

// TestClusterPeerDownDuringGraceStopsTheRotation: a peer is stopped during the grace wait. The rotator restarts no
// other peer while it is down: it stops, naming that peer, and leaves the journal resumable; once the peer is back,
// a rerun completes.
func TestClusterPeerDownDuringGraceStopsTheRotation(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 3, mode: "env", grace: "4s", cluster: true, readyTimeout: "5s", extra: "    cluster: {}\n"})
	f.setupCollection(2)
	down := f.names[2] // a follower: peer0 founded the cluster and leads it
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() { code, out := f.rotator("rotate"); done <- result{code, out} }()
	wait.Until(t, "the rotation to reach its grace wait", 60*time.Second, func() (bool, error) {
		return f.journal().Phase == rotation.PhaseGrace, nil
	})
	if _, err := f.h.Engine.StopContainer(context.Background(), down, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code == exitOK || !strings.Contains(r.out, "peer "+down+" is down") || !strings.Contains(r.out, "not restarting node") {
		t.Fatalf("rotate exited %d, want a failure naming %s down:\n%s", r.code, down, r.out)
	}
	if strings.Contains(r.out, "promote") && strings.Contains(r.out, "restarting:") {
		for _, line := range strings.Split(r.out, "\n") {
			if strings.Contains(line, " promote ") && strings.Contains(line, "restarting:") {
				t.Errorf("a peer was restarted while %s was down: %s", down, line)
			}
		}
	}
	if j := f.journal(); j.Phase != rotation.PhasePromoting {
		t.Errorf("journal phase %s, want promoting (resumable)", j.Phase)
	}
	if err := f.h.Engine.StartContainer(context.Background(), down); err != nil {
		t.Fatal(err)
	}
	cur := f.current()
	f.waitActive(cur.Key, 60*time.Second)
	if code, out := f.rotator("rotate"); code != exitOK || !strings.Contains(out, "resumed") {
		t.Fatalf("rerun with every peer up exited %d:\n%s", code, out)
	}
	f.assertKeys(f.current().Key, f.k1)
}

// assertPointsEverywhere checks that every node returns every point of ids, read with key.
func (f *fixture) assertPointsEverywhere(key rotation.Key, ids []int) {
	f.t.Helper()
	body, _ := json.Marshal(ids)
	for _, name := range f.names {
		var got struct {
			Result []json.RawMessage `json:"result"`
		}
		req, _ := http.NewRequest(http.MethodPost, f.url(name)+"/collections/c/points", strings.NewReader(`{"ids":`+string(body)+`}`))
		req.Header.Set("api-key", key.Reveal())
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.client.Do(req)
		if err != nil {
			f.t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if len(got.Result) != len(ids) {
			f.t.Errorf("%s returns %d of the %d acknowledged points", name, len(got.Result), len(ids))
		}
	}
}
