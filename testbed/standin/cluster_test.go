package standin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/testbed/syncbuf"
)

// The cluster tests run real stand-in processes on 127.0.0.1: the test binary runs itself as the stand-in when
// childMarker is set (no separate build needed).
const childMarker = "STANDIN_TEST_RUN_AS_STANDIN"

func TestMain(m *testing.M) {
	if os.Getenv(childMarker) == "1" {
		os.Exit(Main(os.Args[1:], os.Environ()))
	}
	os.Exit(m.Run())
}

// Test keys (never printed: failures name them K1 and K2).
const (
	clusterK1 = "k1-cluster-test-key-0123456789abcdef"
	clusterK2 = "k2-cluster-test-key-fedcba9876543210"
)

// peerKeys is a peer's key configuration.
type peerKeys struct{ api, alt string }

type peerProc struct {
	name      string
	dir       string
	rest, p2p int
	args      []string
	enforce   bool
	keys      peerKeys
	extraEnv  []string
	cmd       *exec.Cmd
	done      chan struct{}
	logs      *syncbuf.Buffer
	id        uint64
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (p *peerProc) uri() string { return fmt.Sprintf("http://127.0.0.1:%d", p.p2p) }

// start runs the peer with its current keys and waits until its REST port answers.
func (p *peerProc) start(t *testing.T) {
	t.Helper()
	env := []string{childMarker + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + p.dir,
		"QDRANT__SERVICE__HOST=127.0.0.1", fmt.Sprintf("QDRANT__SERVICE__HTTP_PORT=%d", p.rest),
		"QDRANT__CLUSTER__ENABLED=true", fmt.Sprintf("QDRANT__CLUSTER__P2P__PORT=%d", p.p2p),
		fmt.Sprintf("QDRANT__SERVICE__ENFORCE_INTERNAL_AUTH=%t", p.enforce),
		"QDRANT__SERVICE__API_KEY=" + p.keys.api, "QDRANT__SERVICE__ALT_API_KEY=" + p.keys.alt}
	env = append(env, p.extraEnv...)
	p.cmd = exec.Command(os.Args[0], p.args...)
	p.cmd.Dir, p.cmd.Env = p.dir, env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	fmt.Fprintf(p.logs, "=== start %s\n", p.name)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	p.done = done
	go func(c *exec.Cmd) { _ = c.Wait(); close(done) }(p.cmd)
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", p.rest))
		if err == nil {
			res.Body.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("%s exited during start:\n%s", p.name, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start:\n%s", p.name, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the exit.
func (p *peerProc) stop(t *testing.T) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop after SIGTERM", p.name)
	}
	p.cmd = nil
}

func (p *peerProc) kill() {
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.cmd = nil
	}
}

// testCluster is a set of peers started as a bootstrap chain (peer i joins through peer i-1).
type testCluster struct {
	t     *testing.T
	peers []*peerProc
}

func startTestCluster(t *testing.T, n int, enforce bool, keys peerKeys, extraEnv ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	for i := 0; i < n; i++ {
		p := &peerProc{name: fmt.Sprintf("peer-%d", i), dir: t.TempDir(), rest: freeTCPPort(t), p2p: freeTCPPort(t),
			enforce: enforce, keys: keys, extraEnv: extraEnv, logs: &syncbuf.Buffer{}}
		p.args = []string{"--uri", p.uri()}
		if i > 0 {
			p.args = append(p.args, "--bootstrap", c.peers[i-1].uri())
		}
		c.peers = append(c.peers, p)
		t.Cleanup(p.kill)
		p.start(t)
	}
	t.Cleanup(func() {
		for _, p := range c.peers {
			p.kill()
			if l := p.logs.String(); strings.Contains(l, "DATA RACE") || strings.Contains(l, "panic:") {
				t.Errorf("%s reported a data race or a panic", p.name)
			}
		}
		if t.Failed() {
			for _, p := range c.peers {
				t.Logf("logs of %s:\n%s", p.name, redactKeys(p.logs.String()))
			}
		}
	})
	for _, p := range c.peers {
		p.id = c.status(p, keys.api).PeerID
	}
	return c
}

func redactKeys(s string) string {
	return strings.NewReplacer(clusterK1, "<K1>", clusterK2, "<K2>").Replace(s)
}

// call does a REST request; it returns the status and body.
func (c *testCluster) call(p *peerProc, key, method, path, body string) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", p.rest, path), rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("api-key", key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (c *testCluster) result(p *peerProc, key, method, path, body string, out any) {
	c.t.Helper()
	status, b := c.call(p, key, method, path, body)
	if status != 200 {
		c.t.Fatalf("%s %s on %s: %d %s", method, path, p.name, status, b)
	}
	env := struct {
		Result json.RawMessage `json:"result"`
	}{}
	if err := json.Unmarshal(b, &env); err != nil {
		c.t.Fatalf("%s %s on %s: %v: %s", method, path, p.name, err, b)
	}
	if out != nil {
		if err := json.Unmarshal(env.Result, out); err != nil {
			c.t.Fatalf("%s %s on %s: %v: %s", method, path, p.name, err, env.Result)
		}
	}
}

type clusterStatusResult struct {
	Status   string                          `json:"status"`
	PeerID   uint64                          `json:"peer_id"`
	Peers    map[string]struct{ URI string } `json:"peers"`
	RaftInfo struct {
		Term   uint64  `json:"term"`
		Leader *uint64 `json:"leader"`
		Role   string  `json:"role"`
	} `json:"raft_info"`
	Consensus struct {
		Status string `json:"consensus_thread_status"`
	} `json:"consensus_thread_status"`
	Failures map[string]struct {
		Count       int    `json:"count"`
		LatestError string `json:"latest_error"`
	} `json:"message_send_failures"`
}

func (c *testCluster) status(p *peerProc, key string) clusterStatusResult {
	c.t.Helper()
	var r clusterStatusResult
	c.result(p, key, "GET", "/cluster", "", &r)
	return r
}

type collClusterResult struct {
	PeerID      uint64 `json:"peer_id"`
	ShardCount  int    `json:"shard_count"`
	LocalShards []struct {
		ShardID     uint32 `json:"shard_id"`
		PointsCount int    `json:"points_count"`
		State       string `json:"state"`
	} `json:"local_shards"`
	RemoteShards []struct {
		ShardID uint32 `json:"shard_id"`
		PeerID  uint64 `json:"peer_id"`
		State   string `json:"state"`
	} `json:"remote_shards"`
	ShardTransfers []struct {
		ShardID uint32 `json:"shard_id"`
		From    uint64 `json:"from"`
		To      uint64 `json:"to"`
		Sync    bool   `json:"sync"`
		Method  string `json:"method"`
	} `json:"shard_transfers"`
}

func (c *testCluster) collCluster(p *peerProc, key, coll string) collClusterResult {
	c.t.Helper()
	var r collClusterResult
	c.result(p, key, "GET", "/collections/"+coll+"/cluster", "", &r)
	return r
}

// replicaStates maps "shard/peer" to the state p reports for every replica of coll.
func (c *testCluster) replicaStates(p *peerProc, key, coll string) map[string]string {
	c.t.Helper()
	r := c.collCluster(p, key, coll)
	out := map[string]string{}
	for _, l := range r.LocalShards {
		out[fmt.Sprintf("%d/%d", l.ShardID, r.PeerID)] = l.State
	}
	for _, rs := range r.RemoteShards {
		out[fmt.Sprintf("%d/%d", rs.ShardID, rs.PeerID)] = rs.State
	}
	return out
}

// eventually polls cond every 50 ms until it returns "" or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %s: %s", what, timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// agreeOnLeader waits until every peer in ps reports the same leader, exactly one Leader role, len(ps) live-known
// peers (known = want peers) and a working consensus thread; it returns the leader.
func (c *testCluster) agreeOnLeader(ps []*peerProc, keyOf func(*peerProc) string, wantPeers int) uint64 {
	c.t.Helper()
	var leader uint64
	eventually(c.t, 10*time.Second, "peers agree on a leader", func() string {
		leaders := map[uint64]bool{}
		nLeaders := 0
		for _, p := range ps {
			s := c.status(p, keyOf(p))
			if s.Status != "enabled" || s.Consensus.Status != "working" || len(s.Peers) != wantPeers || s.RaftInfo.Leader == nil {
				return fmt.Sprintf("%s: status %s, %d peers, leader %v", p.name, s.Status, len(s.Peers), s.RaftInfo.Leader)
			}
			leaders[*s.RaftInfo.Leader] = true
			if s.RaftInfo.Role == "Leader" {
				nLeaders++
				if *s.RaftInfo.Leader != s.PeerID {
					return p.name + " is Leader but names another leader"
				}
			}
			leader = *s.RaftInfo.Leader
		}
		if len(leaders) != 1 || nLeaders != 1 {
			return fmt.Sprintf("leaders %v, %d peers in role Leader", leaders, nLeaders)
		}
		return ""
	})
	return leader
}

func (c *testCluster) upsert(p *peerProc, key, coll string, ids ...int) {
	c.t.Helper()
	var pts []string
	for _, id := range ids {
		pts = append(pts, fmt.Sprintf(`{"id":%d,"vector":[%d,1],"payload":{"n":%d}}`, id, id+1, id))
	}
	var r struct {
		Status string `json:"status"`
	}
	c.result(p, key, "PUT", "/collections/"+coll+"/points?wait=true", `{"points":[`+strings.Join(pts, ",")+`]}`, &r)
	if r.Status != "completed" {
		c.t.Fatalf("upsert on %s: status %q", p.name, r.Status)
	}
}

// ids returns the sorted ids of every point of coll read through p (scroll).
func (c *testCluster) ids(p *peerProc, key, coll string) []int {
	c.t.Helper()
	var r struct {
		Points []struct {
			ID      int            `json:"id"`
			Payload map[string]int `json:"payload"`
		} `json:"points"`
	}
	c.result(p, key, "POST", "/collections/"+coll+"/points/scroll", `{"limit":10000}`, &r)
	out := []int{}
	for _, pt := range r.Points {
		if pt.Payload["n"] != pt.ID {
			c.t.Fatalf("%s: point %d has payload %v", p.name, pt.ID, pt.Payload)
		}
		out = append(out, pt.ID)
	}
	return out
}

func sortedIDs(set map[int]bool) []int {
	out := []int{}
	for id := range set {
		out = append(out, id)
	}
	sort.Ints(out)
	return out
}

func (c *testCluster) expectIDs(p *peerProc, key, coll string, want map[int]bool) {
	c.t.Helper()
	if got, w := fmt.Sprint(c.ids(p, key, coll)), fmt.Sprint(sortedIDs(want)); got != w {
		c.t.Fatalf("%s: %s has points %s, want %s", p.name, coll, got, w)
	}
}

// allActive waits until every peer in ps reports every replica of coll Active and no transfer.
func (c *testCluster) allActive(ps []*peerProc, keyOf func(*peerProc) string, coll string) {
	c.t.Helper()
	eventually(c.t, 10*time.Second, coll+": every replica Active on every peer", func() string {
		for _, p := range ps {
			r := c.collCluster(p, keyOf(p), coll)
			if len(r.ShardTransfers) > 0 {
				return fmt.Sprintf("%s reports transfers %+v", p.name, r.ShardTransfers)
			}
			for k, s := range c.replicaStates(p, keyOf(p), coll) {
				if s != replicaActive {
					return fmt.Sprintf("%s reports replica %s %s", p.name, k, s)
				}
			}
		}
		return ""
	})
}

func (c *testCluster) byID(id uint64) *peerProc {
	for _, p := range c.peers {
		if p.id == id {
			return p
		}
	}
	c.t.Fatalf("no peer %d", id)
	return nil
}

func (c *testCluster) others(p *peerProc) []*peerProc {
	var out []*peerProc
	for _, q := range c.peers {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}

func constKey(k string) func(*peerProc) string { return func(*peerProc) string { return k } }

func (c *testCluster) readyz(p *peerProc) int {
	status, _ := c.call(p, "", "GET", "/readyz", "")
	return status
}

// TestClusterLeaderFailover: three peers join through a bootstrap chain and agree on one leader; when the leader
// stops, the other two agree on the live peer with the smallest id, with a higher term.
func TestClusterLeaderFailover(t *testing.T) {
	c := startTestCluster(t, 3, true, peerKeys{api: clusterK1})
	leader := c.agreeOnLeader(c.peers, constKey(clusterK1), 3)
	if leader != c.peers[0].id {
		t.Fatalf("leader %d, want the first peer %d (a leader stays while it is live)", leader, c.peers[0].id)
	}
	for _, p := range c.peers {
		if status := c.readyz(p); status != 200 {
			t.Fatalf("%s readyz %d", p.name, status)
		}
	}
	term := c.status(c.peers[1], clusterK1).RaftInfo.Term
	old := c.byID(leader)
	old.stop(t)
	rest := c.others(old)
	want := rest[0].id
	if rest[1].id < want {
		want = rest[1].id
	}
	start := time.Now()
	if got := c.agreeOnLeader(rest, constKey(clusterK1), 3); got != want {
		t.Fatalf("new leader %d, want the smallest live id %d", got, want)
	}
	if s := c.status(rest[0], clusterK1); s.RaftInfo.Term <= term {
		t.Fatalf("term %d after failover, was %d", s.RaftInfo.Term, term)
	}
	t.Logf("new leader agreed %s after the leader stopped", time.Since(start).Round(time.Millisecond))
	// The old leader comes back as a follower of the new one.
	old.start(t)
	if got := c.agreeOnLeader(c.peers, constKey(clusterK1), 3); got != want {
		t.Fatalf("leader after the old leader's return %d, want %d", got, want)
	}
}

// TestClusterReplicationAndRecovery: writes on any peer are readable on every peer; with a replica's peer down
// writes still succeed and the replica shows Dead everywhere; restarted, the peer is not ready until its replicas
// caught up through a visible transfer, and every acknowledged point is on it.
func TestClusterReplicationAndRecovery(t *testing.T) {
	c := startTestCluster(t, 3, false, peerKeys{api: clusterK1}, "STANDIN_TRANSFER_DELAY=1s")
	key := constKey(clusterK1)
	c.result(c.peers[1], clusterK1, "PUT", "/collections/a",
		`{"vectors":{"size":2,"distance":"Dot"},"shard_number":1,"replication_factor":2}`, nil)
	c.result(c.peers[2], clusterK1, "PUT", "/collections/b",
		`{"vectors":{"size":2,"distance":"Cosine"},"shard_number":3,"replication_factor":2}`, nil)
	var info struct {
		Config struct {
			Params struct {
				ShardNumber int `json:"shard_number"`
				RF          int `json:"replication_factor"`
				WCF         int `json:"write_consistency_factor"`
			} `json:"params"`
		} `json:"config"`
	}
	c.result(c.peers[0], clusterK1, "GET", "/collections/b", "", &info)
	if p := info.Config.Params; p.ShardNumber != 3 || p.RF != 2 || p.WCF != 1 {
		t.Fatalf("collection b params %+v", p)
	}
	acked := map[string]map[int]bool{"a": {}, "b": {}}
	write := func(p *peerProc, ids ...int) {
		t.Helper()
		for coll := range acked {
			c.upsert(p, clusterK1, coll, ids...)
			for _, id := range ids {
				acked[coll][id] = true
			}
		}
	}
	for i, p := range c.peers {
		write(p, 10*i+1, 10*i+2, 10*i+3)
	}
	for _, p := range c.peers {
		for coll := range acked {
			c.expectIDs(p, clusterK1, coll, acked[coll])
		}
	}

	// Stop a peer holding a replica of a that is not the leader.
	leader := *c.status(c.peers[0], clusterK1).RaftInfo.Leader
	var victim *peerProc
	for k := range c.replicaStates(c.peers[0], clusterK1, "a") {
		var shard int
		var id uint64
		fmt.Sscanf(k, "%d/%d", &shard, &id)
		if id != leader {
			victim = c.byID(id)
		}
	}
	victim.stop(t)
	live := c.others(victim)
	write(live[0], 101, 102, 103, 104, 105, 106)
	write(live[1], 201, 202, 203)
	victimReplica := fmt.Sprintf("0/%d", victim.id)
	for _, p := range live {
		if s := c.replicaStates(p, clusterK1, "a")[victimReplica]; s != replicaDead {
			t.Fatalf("%s shows the stopped peer's replica of a as %q, want Dead", p.name, s)
		}
		for coll := range acked {
			c.expectIDs(p, clusterK1, coll, acked[coll])
		}
	}

	// Restart: /readyz 503 while the replicas catch up (Partial, transfer listed), then 200 for good.
	victim.start(t)
	if status := c.readyz(victim); status != 503 {
		t.Fatalf("readyz right after the restart: %d, want 503", status)
	}
	sawTransfer := false
	eventually(t, 10*time.Second, "restarted peer ready", func() string {
		r := c.collCluster(live[0], clusterK1, "a")
		for _, tr := range r.ShardTransfers {
			if tr.To == victim.id && tr.Sync && tr.Method == "stream_records" {
				sawTransfer = true
				if s := c.replicaStates(victim, clusterK1, "a")[victimReplica]; s != replicaPartial {
					return "replica under transfer is " + s
				}
			}
		}
		if status := c.readyz(victim); status != 200 {
			return fmt.Sprintf("readyz %d", status)
		}
		return ""
	})
	if !sawTransfer {
		t.Fatal("no shard transfer to the restarted peer was listed")
	}
	c.allActive(c.peers, key, "a")
	c.allActive(c.peers, key, "b")
	for _, l := range c.collCluster(victim, clusterK1, "a").LocalShards {
		if l.PointsCount != len(acked["a"]) {
			t.Fatalf("restarted peer holds %d points of a, want %d", l.PointsCount, len(acked["a"]))
		}
	}
	// The other replica of a goes down: the restarted peer alone serves every acknowledged point.
	for k := range c.replicaStates(victim, clusterK1, "a") {
		var shard int
		var id uint64
		fmt.Sscanf(k, "%d/%d", &shard, &id)
		if id != victim.id {
			other := c.byID(id)
			other.stop(t)
			c.expectIDs(victim, clusterK1, "a", acked["a"])
			write(victim, 301)
			other.start(t)
		}
	}
	eventually(t, 10*time.Second, "readyz latched on the restarted peer", func() string {
		if c.readyz(victim) != 200 {
			return "not 200"
		}
		return ""
	})
	c.allActive(c.peers, key, "a")
	for _, p := range c.peers {
		for coll := range acked {
			c.expectIDs(p, clusterK1, coll, acked[coll])
		}
	}
}

// TestClusterInternalAuthKeyMismatch: with enforce_internal_auth, a peer restarted with another key (no alt)
// refuses the others' internal calls and they refuse its: writes to it fail with 401, its replica turns Dead, it
// is not ready and sees no quorum. Back on the shared key it recovers.
func TestClusterInternalAuthKeyMismatch(t *testing.T) {
	c := startTestCluster(t, 3, true, peerKeys{api: clusterK1})
	c.result(c.peers[0], clusterK1, "PUT", "/collections/c",
		`{"vectors":{"size":2,"distance":"Dot"},"shard_number":1,"replication_factor":3}`, nil)
	acked := map[int]bool{}
	c.upsert(c.peers[1], clusterK1, "c", 1, 2)
	acked[1], acked[2] = true, true
	for _, p := range c.peers {
		c.expectIDs(p, clusterK1, "c", acked)
	}

	odd := c.peers[2]
	odd.stop(t)
	odd.keys = peerKeys{api: clusterK2}
	odd.start(t)
	c.upsert(c.peers[0], clusterK1, "c", 3)
	acked[3] = true
	oddReplica := fmt.Sprintf("0/%d", odd.id)
	for _, p := range c.others(odd) {
		if s := c.replicaStates(p, clusterK1, "c")[oddReplica]; s != replicaDead {
			t.Fatalf("%s shows the mismatched peer's replica as %q, want Dead", p.name, s)
		}
	}
	s := c.status(c.peers[0], clusterK1)
	f, ok := s.Failures[odd.uri()+"/"]
	if !ok || !strings.Contains(f.LatestError, "Unauthenticated") {
		t.Fatalf("message_send_failures on %s: %+v", c.peers[0].name, s.Failures)
	}
	eventually(t, 5*time.Second, "mismatched peer loses the quorum", func() string {
		s := c.status(odd, clusterK2)
		if s.RaftInfo.Role != "Candidate" || s.RaftInfo.Leader != nil {
			return fmt.Sprintf("role %s leader %v", s.RaftInfo.Role, s.RaftInfo.Leader)
		}
		return ""
	})
	if status := c.readyz(odd); status != 503 {
		t.Fatalf("mismatched peer readyz %d, want 503", status)
	}

	odd.stop(t)
	odd.keys = peerKeys{api: clusterK1}
	odd.start(t)
	eventually(t, 10*time.Second, "recovered peer ready", func() string {
		if status := c.readyz(odd); status != 200 {
			return fmt.Sprintf("readyz %d", status)
		}
		return ""
	})
	c.allActive(c.peers, constKey(clusterK1), "c")
	for _, l := range c.collCluster(odd, clusterK1, "c").LocalShards {
		if l.PointsCount != len(acked) {
			t.Fatalf("recovered peer holds %d points, want %d", l.PointsCount, len(acked))
		}
	}
}

// TestClusterThreeStepRotation: with enforce_internal_auth, the 3-restart plan (K1+alt K2, K2+alt K1, K2) applied
// one peer at a time never breaks replication: after every restart all replicas are Active and writes reach all.
func TestClusterThreeStepRotation(t *testing.T) {
	c := startTestCluster(t, 3, true, peerKeys{api: clusterK1})
	c.result(c.peers[0], clusterK1, "PUT", "/collections/c",
		`{"vectors":{"size":2,"distance":"Dot"},"shard_number":1,"replication_factor":3}`, nil)
	acked := map[int]bool{}
	next := 1
	keyOf := func(p *peerProc) string { return p.keys.api } // a peer's own primary key always works on it
	for step, keys := range []peerKeys{{clusterK1, clusterK2}, {clusterK2, clusterK1}, {clusterK2, ""}} {
		for i, p := range c.peers {
			p.stop(t)
			p.keys = keys
			p.start(t)
			eventually(t, 10*time.Second, fmt.Sprintf("step %d %s ready", step+1, p.name), func() string {
				if status := c.readyz(p); status != 200 {
					return fmt.Sprintf("readyz %d", status)
				}
				return ""
			})
			c.allActive(c.peers, keyOf, "c")
			writer := c.peers[(i+1)%len(c.peers)]
			c.upsert(writer, keyOf(writer), "c", next)
			acked[next] = true
			next++
			for _, q := range c.peers {
				for k, s := range c.replicaStates(q, keyOf(q), "c") {
					if s != replicaActive {
						t.Fatalf("step %d after %s: %s reports replica %s %s", step+1, p.name, q.name, k, s)
					}
				}
			}
		}
	}
	for _, p := range c.peers {
		for _, l := range c.collCluster(p, clusterK2, "c").LocalShards {
			if l.PointsCount != len(acked) || l.State != replicaActive {
				t.Fatalf("%s holds %d points (%s), want %d", p.name, l.PointsCount, l.State, len(acked))
			}
		}
		c.expectIDs(p, clusterK2, "c", acked)
	}
}

// TestClusterMismatchedKeysWithoutInternalAuth: without enforce_internal_auth the internal API takes any key, so a
// peer on another key keeps replicating.
func TestClusterMismatchedKeysWithoutInternalAuth(t *testing.T) {
	c := startTestCluster(t, 3, false, peerKeys{api: clusterK1})
	c.result(c.peers[0], clusterK1, "PUT", "/collections/c",
		`{"vectors":{"size":2,"distance":"Dot"},"shard_number":1,"replication_factor":3}`, nil)
	odd := c.peers[2]
	odd.stop(t)
	odd.keys = peerKeys{api: clusterK2}
	odd.start(t)
	keyOf := func(p *peerProc) string { return p.keys.api }
	eventually(t, 10*time.Second, "peer on another key ready", func() string {
		if status := c.readyz(odd); status != 200 {
			return fmt.Sprintf("readyz %d", status)
		}
		return ""
	})
	acked := map[int]bool{}
	for i, p := range c.peers {
		c.upsert(p, keyOf(p), "c", i+1)
		acked[i+1] = true
	}
	c.allActive(c.peers, keyOf, "c")
	for _, p := range c.peers {
		for _, l := range c.collCluster(p, keyOf(p), "c").LocalShards {
			if l.PointsCount != len(acked) {
				t.Fatalf("%s holds %d points, want %d", p.name, l.PointsCount, len(acked))
			}
		}
	}
	if status, body := c.call(odd, clusterK1, "GET", "/collections", ""); status != 401 || !bytes.Equal(body, []byte(msgInvalidKey)) {
		t.Fatalf("REST on the peer with another key accepted the old key: %d", status)
	}
}

// TestClusterTwoStepRotationBreaksWithInternalAuth: the 2-restart plan is not enough with enforce_internal_auth:
// after step 1 (K1 + alt K2 everywhere), the first peer on K2 alone refuses the others' K1, so its replica dies.
func TestClusterTwoStepRotationBreaksWithInternalAuth(t *testing.T) {
	c := startTestCluster(t, 3, true, peerKeys{api: clusterK1})
	c.result(c.peers[0], clusterK1, "PUT", "/collections/c",
		`{"vectors":{"size":2,"distance":"Dot"},"shard_number":1,"replication_factor":3}`, nil)
	for _, p := range c.peers {
		p.stop(t)
		p.keys = peerKeys{clusterK1, clusterK2}
		p.start(t)
		eventually(t, 10*time.Second, p.name+" ready", func() string {
			if c.readyz(p) != 200 {
				return "not ready"
			}
			return ""
		})
	}
	c.allActive(c.peers, constKey(clusterK1), "c")
	first := c.peers[0]
	first.stop(t)
	first.keys = peerKeys{api: clusterK2}
	first.start(t)
	c.upsert(c.peers[1], clusterK1, "c", 1)
	replica := fmt.Sprintf("0/%d", first.id)
	if s := c.replicaStates(c.peers[2], clusterK1, "c")[replica]; s != replicaDead {
		t.Fatalf("replica of the peer on K2 alone is %q, want Dead", s)
	}
	// The others cannot reach the first peer (it was the leader): they elect one of themselves. The first peer can
	// still call them (they accept K2 as alt), but the transfers that would repair its replica are pushed with K1
	// and refused, so it never becomes ready.
	rest := c.others(first)
	if leader := c.agreeOnLeader(rest, constKey(clusterK1), 3); leader == first.id {
		t.Fatal("the unreachable peer is still the leader")
	}
	time.Sleep(1500 * time.Millisecond)
	if status := c.readyz(first); status != 503 {
		t.Fatalf("peer on K2 alone: readyz %d, want 503", status)
	}
	if s := c.replicaStates(c.peers[2], clusterK1, "c")[replica]; s == replicaActive {
		t.Fatalf("replica of the peer on K2 alone became Active")
	}
}
