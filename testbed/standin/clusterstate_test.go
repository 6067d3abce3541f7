package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/testbed/syncbuf"
)

func TestPlacementAndShardOf(t *testing.T) {
	peers := []uint64{3, 7, 9}
	got := placement(peers, 3, 2)
	want := [][]uint64{{3, 7}, {7, 9}, {9, 3}}
	for s, reps := range got {
		for j, r := range reps {
			if r.Peer != want[s][j] || r.State != replicaActive {
				t.Fatalf("placement = %+v, want peers %v", got, want)
			}
		}
	}
	if got := placement(peers, 1, 5); len(got[0]) != 3 {
		t.Fatalf("replication factor above the peer count must be capped: %+v", got)
	}
	seen := map[uint32]bool{}
	for i := uint64(0); i < 64; i++ {
		s := shardOf(pointID{num: i}, 3)
		if s >= 3 || s != shardOf(pointID{num: i}, 3) {
			t.Fatalf("shardOf(%d) = %d", i, s)
		}
		seen[s] = true
	}
	if len(seen) != 3 || shardOf(pointID{uuid: "6f9619ff-8b86-d011-b42d-00c04fc964ff"}, 1) != 0 {
		t.Fatalf("points are not spread over the shards: %v", seen)
	}
}

func TestClusterStateOperations(t *testing.T) {
	st := newClusterState(5, "http://a:6335/")
	must := func(op clusterOp) {
		t.Helper()
		if err := st.apply(op); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		st.Commit++
	}
	must(clusterOp{Kind: opAddPeer, Peer: 2, URI: "http://b:6335/"})
	must(clusterOp{Kind: opAddPeer, Peer: 8, URI: "http://c:6335/"})
	must(clusterOp{Kind: opCreateCollection, Collection: "c", Meta: &collMeta{ShardNumber: 1, RF: 2, WCF: 1}})
	m := st.Collections["c"]
	if m.Gen != st.Commit || len(m.Shards[0]) != 2 || m.Shards[0][0].Peer != 2 || m.Shards[0][1].Peer != 5 {
		t.Fatalf("created %+v", m)
	}
	if err := st.apply(clusterOp{Kind: opCreateCollection, Collection: "c", Meta: &collMeta{ShardNumber: 1, RF: 1, WCF: 1}}); !errors.Is(err, errOpExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	dead := clusterOp{Kind: opSetReplicaState, Collection: "c", Gen: m.Gen, Shard: 0, Peer: 2, State: replicaDead,
		Expect: []string{replicaActive, replicaPartial}}
	must(dead)
	if err := st.apply(dead); !errors.Is(err, errOpConflict) {
		t.Fatalf("compare-and-set on a Dead replica: %v", err)
	}
	// A transfer needs an Active source; it makes the target Partial and is listed until finished.
	if err := st.apply(clusterOp{Kind: opStartTransfer, Collection: "c", Gen: m.Gen, Peer: 5, From: 2}); !errors.Is(err, errOpConflict) {
		t.Fatalf("transfer from a Dead replica: %v", err)
	}
	must(clusterOp{Kind: opStartTransfer, Collection: "c", Gen: m.Gen, Peer: 2, From: 5, Expect: []string{replicaDead}})
	if r := st.Collections["c"].replica(0, 2); r.State != replicaPartial || len(st.Transfers) != 1 {
		t.Fatalf("after start: %+v %+v", r, st.Transfers)
	}
	// A failed update during the transfer marks the target Dead: finishing is then refused.
	c := st.clone()
	if err := c.apply(dead); err != nil {
		t.Fatal(err)
	}
	if err := c.apply(clusterOp{Kind: opFinishTransfer, Collection: "c", Gen: m.Gen, Peer: 2, From: 5}); !errors.Is(err, errOpConflict) {
		t.Fatalf("finish after Dead: %v", err)
	}
	must(clusterOp{Kind: opFinishTransfer, Collection: "c", Gen: m.Gen, Peer: 2, From: 5})
	if r := st.Collections["c"].replica(0, 2); r.State != replicaActive || len(st.Transfers) != 0 {
		t.Fatalf("after finish: %+v %+v", r, st.Transfers)
	}
	if err := st.apply(clusterOp{Kind: opSetReplicaState, Collection: "c", Gen: m.Gen + 1, Peer: 2, State: replicaDead}); !errors.Is(err, errOpMissing) {
		t.Fatalf("stale generation: %v", err)
	}
	must(clusterOp{Kind: opDeleteCollection, Collection: "c"})
	if err := st.apply(clusterOp{Kind: opDeleteCollection, Collection: "c"}); !errors.Is(err, errOpMissing) {
		t.Fatalf("delete missing: %v", err)
	}

	a := &clusterState{Term: 2, Commit: 5, Leader: 9}
	for _, tc := range []struct {
		b    *clusterState
		want bool
	}{
		{&clusterState{Term: 1, Commit: 50, Leader: 1}, true},
		{&clusterState{Term: 2, Commit: 4, Leader: 1}, true},
		{&clusterState{Term: 2, Commit: 5, Leader: 10}, true},
		{&clusterState{Term: 2, Commit: 5, Leader: 3}, false},
		{&clusterState{Term: 3, Commit: 1, Leader: 9}, false},
	} {
		if got := a.newerThan(tc.b); got != tc.want {
			t.Errorf("%+v newer than %+v = %v", a, tc.b, got)
		}
	}
}

func TestClusterConfigAndArgs(t *testing.T) {
	cfg, _, err := loadConfig(t, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.Enabled || cfg.Cluster.P2PPort != 6335 || cfg.Storage.ReplicationFactor != 1 ||
		cfg.Storage.WriteConsistencyFactor != 1 {
		t.Fatalf("defaults: %+v %+v", cfg.Cluster, cfg.Storage)
	}
	cfg, _, err = loadConfig(t, t.TempDir(), "", "QDRANT__CLUSTER__ENABLED=true", "QDRANT__CLUSTER__P2P__PORT=7335",
		"QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR=2", "QDRANT__CLUSTER__P2P__ENABLE_TLS=true")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Cluster.Enabled || cfg.Cluster.P2PPort != 7335 || cfg.Storage.ReplicationFactor != 2 ||
		!strings.Contains(texts(cfg.warnings()), "cluster.p2p.enable_tls is not supported") {
		t.Fatalf("cluster config: %+v %+v %q", cfg.Cluster, cfg.Storage, texts(cfg.warnings()))
	}
	for _, env := range []string{"QDRANT__CLUSTER__P2P__PORT=x", "QDRANT__STORAGE__COLLECTION__WRITE_CONSISTENCY_FACTOR=0"} {
		if _, _, err := loadConfig(t, t.TempDir(), "", env); err == nil {
			t.Errorf("%s accepted", env)
		}
	}
	a, err := parseArgs([]string{"--uri", "http://node-0:6335", "--bootstrap=http://node-1:6335", "--config-path", "x"})
	if err != nil || a.uri != "http://node-0:6335" || a.bootstrap != "http://node-1:6335" || a.configPath != "x" {
		t.Fatalf("args %+v %v", a, err)
	}
	for in, want := range map[string]string{"http://node-0:6335": "http://node-0:6335/", "http://n/": "http://n:6335/",
		"https://n:1": "", "node:6335": ""} {
		got, err := normalizeURI(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("normalizeURI(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestInternalAuth checks the internal API's auth rule: with enforce_internal_auth api_key and alt_api_key are
// accepted, anything else is refused as by the REST API; the health check stays open.
func TestInternalAuth(t *testing.T) {
	enforce := true
	n := &clusterNode{id: 1, now: time.Now, mux: http.NewServeMux(),
		inKeys: newAuthKeys(ServiceConfig{APIKey: strPtr("primary-key"), AltAPIKey: strPtr("second-key"),
			ReadOnlyAPIKey: strPtr("ro-key"), EnforceInternalAuth: &enforce})}
	n.mux.HandleFunc("GET /internal/health", n.handleHealth)
	n.mux.HandleFunc("POST /internal/heartbeat", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	for _, tc := range []struct {
		method, path, key string
		status            int
		body              string
	}{
		{"POST", "/internal/heartbeat", "primary-key", 200, ""},
		{"POST", "/internal/heartbeat", "second-key", 200, ""},
		{"POST", "/internal/heartbeat", "", 401, msgNoCredential},
		{"POST", "/internal/heartbeat", "other-key", 401, msgInvalidKey},
		{"POST", "/internal/heartbeat", "ro-key", 403, "Forbidden: Global manage access is required"},
		{"GET", "/internal/health", "", 200, ""},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.key != "" {
			r.Header.Set("api-key", tc.key)
		}
		w := httptest.NewRecorder()
		n.ServeHTTP(w, r)
		body, _ := io.ReadAll(w.Body)
		if w.Code != tc.status || (tc.body != "" && string(body) != tc.body) {
			t.Errorf("%s %s (key %d bytes): %d %q, want %d %q", tc.method, tc.path, len(tc.key), w.Code, body, tc.status, tc.body)
		}
	}
	n.inKeys = nil // enforce_internal_auth off: no check
	r := httptest.NewRequest("POST", "/internal/heartbeat", nil)
	r.Header.Set("api-key", "other-key")
	w := httptest.NewRecorder()
	n.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("without enforce_internal_auth: %d", w.Code)
	}
}

func strPtr(s string) *string { return &s }

func TestStandaloneCollectionCluster(t *testing.T) {
	s, _ := testServer(t)
	s.peerID = 42
	if r := do(t, s, "PUT", "/collections/c", `{"vectors":{"size":2,"distance":"Dot"}}`); r.status != 200 {
		t.Fatal(r.body)
	}
	do(t, s, "PUT", "/collections/c/points?wait=true", `{"points":[{"id":1,"vector":[1,2]}]}`)
	r := do(t, s, "GET", "/collections/c/cluster", "")
	want := `{"result":{"peer_id":42,"shard_count":1,"local_shards":[{"shard_id":0,"points_count":1,"state":"Active"}],"remote_shards":[],"shard_transfers":[]}`
	if r.status != 200 || !strings.HasPrefix(r.body, want) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r := do(t, s, "GET", "/collections/nope/cluster", ""); r.status != 404 {
		t.Fatalf("missing collection: %d", r.status)
	}
}

// runInProcess starts Run in this process and returns the REST base URL and a stop function (SIGTERM-like).
func runInProcess(t *testing.T, dir string, env ...string) (string, func() (int, string)) {
	t.Helper()
	var out, errOut syncbuf.Buffer
	ready := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, Options{Dir: dir, Stdout: &out, Stderr: &errOut, Ready: func(a net.Addr) { ready <- a },
			Env: append([]string{"QDRANT__SERVICE__HOST=127.0.0.1", "QDRANT__SERVICE__HTTP_PORT=0",
				"QDRANT__CLUSTER__ENABLED=true", "QDRANT__CLUSTER__P2P__PORT=0"}, env...)})
	}()
	stop := func() (int, string) {
		cancel()
		return <-done, out.String() + errOut.String()
	}
	select {
	case a := <-ready:
		t.Cleanup(func() { cancel() })
		return "http://" + a.String(), stop
	case code := <-done:
		cancel()
		return "", func() (int, string) { return code, out.String() + errOut.String() }
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	return "", nil
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("api-key", testKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestSinglePeerCluster: a first peer without --bootstrap is a one-peer cluster and its own leader; collections get
// one shard per peer by default; delete and re-create drop the old points; the peer id survives a restart.
func TestSinglePeerCluster(t *testing.T) {
	dir := t.TempDir()
	base, stop := runInProcess(t, dir, "QDRANT__SERVICE__API_KEY="+testKey)
	if base == "" {
		code, logs := stop()
		t.Fatalf("exited %d: %s", code, logs)
	}
	status, body := httpDo(t, "GET", base+"/cluster", "")
	var st clusterStatusInfo
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &env) != nil || json.Unmarshal(env.Result, &st) != nil {
		t.Fatalf("GET /cluster: %d %s", status, body)
	}
	if st.Status != "enabled" || st.RaftInfo.Role != "Leader" || st.RaftInfo.Leader == nil ||
		*st.RaftInfo.Leader != st.PeerID || len(st.Peers) != 1 || st.ConsensusThreadStatus.Status != "working" ||
		!strings.HasPrefix(body, `{"result":{"status":"enabled","peer_id":`) {
		t.Fatalf("GET /cluster: %s", body)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		contains           string
	}{
		{"GET", "/readyz", "", 200, "all shards are ready"},
		{"PUT", "/collections/c", `{"vectors":{"size":2,"distance":"Cosine"},"shard_number":0}`, 422, "shard_number: value 0 invalid"},
		{"PUT", "/collections/c", `{"vectors":{"size":2,"distance":"Cosine"},"replication_factor":"x"}`, 400, "Format error"},
		{"PUT", "/collections/c", `{"vectors":{"size":2,"distance":"Cosine"}}`, 200, `"result":true`},
		{"PUT", "/collections/c", `{"vectors":{"size":2,"distance":"Cosine"}}`, 409, "already exists"},
		{"PUT", "/collections/c/points?wait=true", `{"points":[{"id":1,"vector":[3,4]},{"id":2,"vector":[1,0]}]}`, 200, `"completed"`},
		{"PUT", "/collections/c/points?wait=true", `{"points":[{"id":3,"vector":[1]}]}`, 400, "Vector dimension error"},
		{"POST", "/collections/c/points", `{"ids":[1],"with_vector":true}`, 200, `"vector":[0.6,0.8]`},
		{"GET", "/collections/c", "", 200, `"replication_factor":1,"shard_number":1,"vectors":{"size":2,"distance":"Cosine"},"write_consistency_factor":1`},
		{"GET", "/collections/c/cluster", "", 200, `"local_shards":[{"shard_id":0,"points_count":2,"state":"Active"}],"remote_shards":[],"shard_transfers":[]`},
		{"GET", "/metrics", "", 200, "cluster_enabled 1"},
		{"DELETE", "/collections/c", "", 200, `"result":true`},
		{"DELETE", "/collections/c", "", 200, `"result":false`},
		{"GET", "/collections/c/exists", "", 200, `"exists":false`},
		{"PUT", "/collections/c", `{"vectors":{"size":2,"distance":"Dot"}}`, 200, `"result":true`},
		{"POST", "/collections/c/points/count", `{}`, 200, `"count":0`},
		{"GET", "/collections/missing/cluster", "", 404, "Not found: Collection `missing` doesn't exist!"},
	} {
		if status, body := httpDo(t, c.method, base+c.path, c.body); status != c.status || !strings.Contains(body, c.contains) {
			t.Errorf("%s %s: %d %s, want %d containing %s", c.method, c.path, status, body, c.status, c.contains)
		}
	}
	if code, logs := stop(); code != ExitOK || strings.Contains(logs, testKey) {
		t.Fatalf("exit %d (or a key in the logs)", code)
	}
	base, stop = runInProcess(t, dir, "QDRANT__SERVICE__API_KEY="+testKey)
	defer stop()
	if _, body := httpDo(t, "GET", base+"/cluster", ""); !strings.Contains(body, fmt.Sprintf(`"peer_id":%d,`, st.PeerID)) {
		t.Fatalf("peer id changed across a restart: %s", body)
	}
}

func TestClusterInvalidKeyPanics(t *testing.T) {
	bad := "bad\u00e9key-0123456789"
	_, stop := runInProcess(t, t.TempDir(), "QDRANT__SERVICE__API_KEY="+bad)
	code, logs := stop()
	if code != ExitPanic || !strings.Contains(logs, "API key contains invalid characters for gRPC metadata") ||
		strings.Contains(logs, bad) {
		t.Fatalf("exit %d, output %q", code, strings.ReplaceAll(logs, bad, "<key>"))
	}
}

// TestStandaloneDataJoinsNewCluster: collections of a standalone node stay available when it founds a cluster, and
// deleting one through the cluster drops its data.
func TestStandaloneDataJoinsNewCluster(t *testing.T) {
	dir := t.TempDir()
	base, stop := runInProcess(t, dir, "QDRANT__CLUSTER__ENABLED=false")
	httpDo(t, "PUT", base+"/collections/old", `{"vectors":{"size":2,"distance":"Dot"}}`)
	httpDo(t, "PUT", base+"/collections/old/points?wait=true", `{"points":[{"id":7,"vector":[1,2]}]}`)
	if code, _ := stop(); code != ExitOK {
		t.Fatal(code)
	}
	base, stop = runInProcess(t, dir)
	defer stop()
	if status, body := httpDo(t, "POST", base+"/collections/old/points/count", `{}`); status != 200 || !strings.Contains(body, `"count":1`) {
		t.Fatalf("count after enabling cluster mode: %d %s", status, body)
	}
	if status, body := httpDo(t, "DELETE", base+"/collections/old", ""); status != 200 || !strings.Contains(body, `"result":true`) {
		t.Fatalf("delete: %d %s", status, body)
	}
	if _, body := httpDo(t, "GET", base+"/metrics", ""); !strings.Contains(body, "collections_vector_total 0") {
		t.Fatalf("local data kept after delete: %s", body)
	}
}
