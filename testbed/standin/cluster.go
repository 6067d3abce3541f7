package standin

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Timing of cluster mode (see the package doc).
const (
	heartbeatInterval   = 200 * time.Millisecond // every peer sends a heartbeat to every other peer this often
	heartbeatTimeout    = 500 * time.Millisecond
	peerDownAfter       = time.Second // a peer not heard from this long is down
	internalCallTimeout = 3 * time.Second
	proposeRetry        = 100 * time.Millisecond
	metaOpTimeout       = 10 * time.Second // collection create/delete wait this long for a leader
	deactivationTimeout = 10 * time.Second // a wait=true write waits this long for a failed replica to be marked Dead
	bootstrapTimeout    = 30 * time.Second
	minTransferDelay    = 200 * time.Millisecond // a transfer reads its source at least this long after it started
	recoveryBackoff     = time.Second
)

// clusterFileName holds the peer id and the cluster state inside storage.storage_path.
const clusterFileName = "standin-cluster.json"

type persistedCluster struct {
	PeerID uint64        `json:"peer_id"`
	URI    string        `json:"uri,omitempty"`
	State  *clusterState `json:"state,omitempty"`
}

func loadPersisted(dir string) (*persistedCluster, error) {
	path := filepath.Join(dir, clusterFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &persistedCluster{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cluster state %s: %w", path, err)
	}
	var p persistedCluster
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("parse cluster state %s: %w", path, err)
	}
	if p.State != nil {
		p.State.normalize()
	}
	return &p, nil
}

// savePersisted writes the file atomically (temporary file, fsync, rename).
func savePersisted(dir string, p *persistedCluster) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, clusterFileName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write cluster state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync cluster state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// randomPeerID is a random non-zero u64, like Qdrant's peer ids (they may exceed 2^53).
func randomPeerID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("standin: no randomness: " + err.Error())
		}
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// peerIDFor returns the persisted peer id of a storage directory, creating one if needed (standalone mode too:
// Qdrant has a peer id in both modes).
func peerIDFor(dir string) (uint64, error) {
	p, err := loadPersisted(dir)
	if err != nil {
		return 0, err
	}
	if p.PeerID == 0 {
		p.PeerID = randomPeerID()
		if err := savePersisted(dir, p); err != nil {
			return 0, err
		}
	}
	return p.PeerID, nil
}

// normalizeURI turns a peer URI into Qdrant's display form (scheme://host:port/).
func normalizeURI(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("invalid peer URI %q: want http://host:port", raw)
	}
	if u.Scheme == "https" {
		return "", fmt.Errorf("invalid peer URI %q: the stand-in's internal API has no TLS, use http://", raw)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "6335")
	}
	return u.Scheme + "://" + u.Host + "/", nil
}

type shardKey struct {
	coll  string
	gen   uint64
	shard uint32
}

type replicaKey struct {
	shardKey
	peer uint64
}

// sendFailure is an entry of message_send_failures in GET /cluster.
type sendFailure struct {
	Count                int    `json:"count"`
	LatestError          string `json:"latest_error"`
	LatestErrorTimestamp string `json:"latest_error_timestamp"`
}

// pendingDeactivation is a replica this peer failed to update and wants marked Dead (Qdrant's locally disabled
// peers): it receives no more updates from this peer until the cluster state shows it deactivated.
type pendingDeactivation struct {
	op       clusterOp
	inFlight bool
}

// clusterNode is one peer in cluster mode.
type clusterNode struct {
	id            uint64
	log           *slog.Logger
	store         *store
	dir           string
	outKey        string       // this peer's primary api_key, sent on every internal call ("" = none)
	inKeys        *authKeys    // checks incoming internal calls; nil unless enforce_internal_auth and a key is set
	auditCfg      *AuditConfig // nil when the configuration has no audit section
	audit         *auditLog    // this peer's audit log, read by the other peers; nil unless audit.enabled
	now           func() time.Time
	client        *http.Client
	transferDelay time.Duration
	defaultRF     uint32
	defaultWCF    uint32
	started       time.Time
	ctx           context.Context
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	mux           *http.ServeMux
	hs            *http.Server
	addr          net.Addr
	stopOnce      sync.Once

	// applyMu orders local point writes against the application of a transfer's points.
	applyMu sync.Mutex

	mu          sync.Mutex
	uri         string
	state       *clusterState
	lastHeard   map[uint64]time.Time
	failures    map[string]*sendFailure
	unreachable map[uint64]bool
	lastLoop    time.Time
	ready       bool
	startupDone bool
	disabled    map[replicaKey]*pendingDeactivation
	recovering  map[shardKey]bool
	uriPending  bool // an add_peer with this peer's new --uri is being proposed
	retryAt     map[shardKey]time.Time
	tracking    map[shardKey]map[pointID]bool
}

type clusterOptions struct {
	cfg       *Config
	dir       string // storage directory
	uri       string // --uri
	bootstrap string // --bootstrap
	store     *store
	log       *slog.Logger
	now       func() time.Time
	knobs     faultKnobs
	audit     *auditLog // nil unless audit.enabled
}

// startCluster loads or creates this peer's identity and cluster state, serves the internal API, joins the
// cluster through --bootstrap when it has no state yet, and starts the heartbeat loop.
func startCluster(ctx context.Context, o clusterOptions) (*clusterNode, error) {
	p, err := loadPersisted(o.dir)
	if err != nil {
		return nil, err
	}
	if p.PeerID == 0 {
		p.PeerID = randomPeerID()
	}
	n := &clusterNode{
		id: p.PeerID, log: o.log, store: o.store, dir: o.dir, now: o.now, auditCfg: o.cfg.Audit, audit: o.audit,
		client:        &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}},
		transferDelay: o.knobs.transferDelay,
		defaultRF:     uint32(o.cfg.Storage.ReplicationFactor),
		defaultWCF:    uint32(o.cfg.Storage.WriteConsistencyFactor),
		started:       time.Now(),
		lastHeard:     map[uint64]time.Time{},
		failures:      map[string]*sendFailure{},
		unreachable:   map[uint64]bool{},
		disabled:      map[replicaKey]*pendingDeactivation{},
		recovering:    map[shardKey]bool{},
		retryAt:       map[shardKey]time.Time{},
		tracking:      map[shardKey]map[pointID]bool{},
	}
	if n.now == nil {
		n.now = time.Now
	}
	if k, ok := nonEmpty(o.cfg.Service.APIKey); ok {
		for i := 0; i < len(k); i++ {
			if k[i] < 0x20 || k[i] > 0x7e {
				return nil, errInvalidMetadataKey
			}
		}
		n.outKey = k
	}
	if e := o.cfg.Service.EnforceInternalAuth; e != nil && *e {
		n.inKeys = newAuthKeys(o.cfg.Service)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	if o.uri != "" {
		if n.uri, err = normalizeURI(o.uri); err != nil {
			return nil, err
		}
	} else if p.URI != "" {
		n.uri = p.URI
	}
	bootstrap := ""
	if o.bootstrap != "" {
		if bootstrap, err = normalizeURI(o.bootstrap); err != nil {
			return nil, err
		}
	}

	if err := n.listen(o.cfg); err != nil {
		return nil, err
	}
	n.log.Info(fmt.Sprintf("Qdrant internal gRPC listening on %d", n.addr.(*net.TCPAddr).Port), "target", "qdrant::tonic")
	if n.inKeys != nil {
		n.log.Info("Internal API requires an API key (enforce_internal_auth)", "target", "qdrant::tonic")
	}

	switch {
	case p.State != nil:
		if bootstrap != "" {
			n.log.Info("Peer has cluster state already; --bootstrap is ignored", "target", "qdrant::consensus")
		}
		n.mu.Lock()
		n.setStateLocked(p.State)
		n.mu.Unlock()
		n.log.Info(fmt.Sprintf("Loaded cluster state: peer %d, %d peers, term %d, commit %d", n.id,
			len(p.State.Peers), p.State.Term, p.State.Commit), "target", "qdrant::consensus")
	case bootstrap != "":
		if err := n.join(ctx, bootstrap); err != nil {
			n.shutdown()
			return nil, err
		}
	default:
		if n.uri == "" {
			n.uri = n.defaultURI(o.cfg)
			n.log.Warn("No --uri given for the first peer; using "+n.uri, "target", "qdrant::consensus")
		}
		st := newClusterState(n.id, n.uri)
		n.importStandalone(st)
		n.mu.Lock()
		n.setStateLocked(st)
		n.mu.Unlock()
		n.log.Info(fmt.Sprintf("Started a new cluster: peer %d is the leader (term 1)", n.id), "target", "qdrant::consensus")
	}

	n.wg.Add(1)
	go n.loop()
	return n, nil
}

func (n *clusterNode) defaultURI(cfg *Config) string {
	host := cfg.Service.Host
	if host == "0.0.0.0" || host == "::" || host == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		} else {
			host = "127.0.0.1"
		}
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(n.addr.(*net.TCPAddr).Port)) + "/"
}

// importStandalone adds collections created before cluster mode was enabled to a new cluster: one shard, on this
// peer, Active. (A peer that joins an existing cluster keeps such data out of it.)
func (n *clusterNode) importStandalone(st *clusterState) {
	for name, gen := range n.store.localCollections() {
		v, ok := n.store.view(name)
		if !ok {
			continue
		}
		if gen == 0 {
			gen = st.Commit
			if err := n.store.setGen(name, gen); err != nil {
				n.log.Error("import collection "+name+": "+err.Error(), "target", "collection")
				continue
			}
		}
		st.Collections[name] = &collMeta{Gen: gen, Vectors: v.vectors, ShardNumber: 1, RF: 1, WCF: 1,
			Shards: [][]replicaInfo{{{Peer: n.id, State: replicaActive}}}}
		n.log.Info("Collection "+name+" from standalone storage joins the new cluster", "target", "collection")
	}
}

// shutdown stops the heartbeat loop, running transfers and the internal API.
func (n *clusterNode) shutdown() {
	n.stopOnce.Do(func() {
		n.cancel()
		if n.hs != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = n.hs.Shutdown(sctx)
			cancel()
		}
		n.wg.Wait()
		n.client.CloseIdleConnections()
	})
}

// setStateLocked publishes a new state: persists it, creates or drops local collections, logs leader changes.
func (n *clusterNode) setStateLocked(st *clusterState) {
	old := n.state
	n.state = st
	if u, ok := st.Peers[n.id]; ok && n.uri == "" {
		n.uri = u
	}
	if err := savePersisted(n.dir, &persistedCluster{PeerID: n.id, URI: n.uri, State: st}); err != nil {
		n.log.Error("persist cluster state: "+err.Error(), "target", "qdrant::consensus")
	}
	if old == nil || old.Leader != st.Leader || old.Term != st.Term {
		role := "follower"
		if st.Leader == n.id {
			role = "leader"
		}
		n.log.Info(fmt.Sprintf("Raft leader is peer %d (term %d); this peer %d is %s", st.Leader, st.Term, n.id, role),
			"target", "qdrant::consensus")
	}
	n.reconcileLocked()
}

// reconcileLocked makes local storage follow the state: a collection with a replica on this peer exists locally
// with the right generation; cluster collections gone from the state are dropped.
func (n *clusterNode) reconcileLocked() {
	st := n.state
	for name, m := range st.Collections {
		holds := false
		for s := range m.Shards {
			if m.replica(uint32(s), n.id) != nil {
				holds = true
			}
		}
		if !holds {
			continue
		}
		if changed, err := n.store.ensureCollection(name, m.Gen, m.Vectors); err != nil {
			n.log.Error("create local shards of "+name+": "+err.Error(), "target", "collection")
		} else if changed {
			n.log.Info("Created local shards of collection "+name, "target", "collection")
		}
	}
	for name, gen := range n.store.localCollections() {
		m, ok := st.Collections[name]
		if gen == 0 && !ok {
			continue // standalone data that never was part of the cluster
		}
		if ok && m.Gen == gen {
			continue
		}
		if ok {
			held := false
			for s := range m.Shards {
				held = held || m.replica(uint32(s), n.id) != nil
			}
			if held {
				continue
			}
		}
		if _, err := n.store.deleteCollection(name); err != nil {
			n.log.Error("drop local collection "+name+": "+err.Error(), "target", "collection")
		} else {
			n.log.Info("Dropped local shards of collection "+name, "target", "collection")
		}
	}
	// Forget pending deactivations the state has caught up with.
	for k := range n.disabled {
		m, ok := st.Collections[k.coll]
		if !ok || m.Gen != k.gen {
			delete(n.disabled, k)
			continue
		}
		if r := m.replica(k.shard, k.peer); r == nil || (r.State != replicaActive && r.State != replicaPartial) {
			delete(n.disabled, k)
		}
	}
}

// adopt takes a received state if it is newer than ours.
func (n *clusterNode) adopt(st *clusterState) {
	if st == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.adoptLocked(st)
}

func (n *clusterNode) adoptLocked(st *clusterState) {
	if st == nil || !st.newerThan(n.state) {
		return
	}
	st.normalize()
	n.setStateLocked(st)
}

// liveLocked returns the peers heard from within peerDownAfter, this peer included. "Heard from" means this
// peer's own heartbeat to it succeeded: Raft needs both directions, and a peer that can call us but refuses our
// key is not part of our working cluster.
func (n *clusterNode) liveLocked(now time.Time) map[uint64]bool {
	live := map[uint64]bool{n.id: true}
	if n.state == nil {
		return live
	}
	for id := range n.state.Peers {
		if t, ok := n.lastHeard[id]; ok && now.Sub(t) < peerDownAfter {
			live[id] = true
		}
	}
	return live
}

func (n *clusterNode) hasQuorumLocked(now time.Time) bool {
	if n.state == nil {
		return false
	}
	live := 0
	for id := range n.state.Peers {
		if id == n.id {
			live++
		} else if t, ok := n.lastHeard[id]; ok && now.Sub(t) < peerDownAfter {
			live++
		}
	}
	if _, ok := n.state.Peers[n.id]; !ok {
		return false
	}
	return 2*live > len(n.state.Peers)
}

func (n *clusterNode) isLeaderLocked(now time.Time) bool {
	return n.state != nil && n.state.Leader == n.id && n.hasQuorumLocked(now)
}

// syncedLocked: this peer is part of a working cluster: it sees a quorum and is the leader or has heard from the
// leader since it started.
func (n *clusterNode) syncedLocked(now time.Time) bool {
	if !n.hasQuorumLocked(now) {
		return false
	}
	if n.state.Leader == n.id {
		return true
	}
	t, ok := n.lastHeard[n.state.Leader]
	return ok && t.After(n.started) && now.Sub(t) < peerDownAfter
}

// electLocked is the leader rule: when the leader has not been heard from for peerDownAfter (counted from this
// peer's start at the earliest) and this peer sees a quorum, the live peer with the smallest id takes over with
// term+1. The leader stays as long as it is live, also when a peer with a smaller id comes back.
func (n *clusterNode) electLocked(now time.Time) {
	st := n.state
	if st == nil || st.Leader == n.id || !n.hasQuorumLocked(now) {
		return
	}
	last := n.started
	if t, ok := n.lastHeard[st.Leader]; ok && t.After(last) {
		last = t
	}
	if _, known := st.Peers[st.Leader]; known && now.Sub(last) < peerDownAfter {
		return
	}
	live := n.liveLocked(now)
	cand := n.id
	for id := range live {
		if id < cand {
			cand = id
		}
	}
	if cand != n.id {
		return
	}
	ns := st.clone()
	ns.Term++
	ns.Commit++
	ns.Leader = n.id
	n.log.Info(fmt.Sprintf("Leader %d is down; peer %d becomes the leader (term %d)", st.Leader, n.id, ns.Term),
		"target", "qdrant::consensus")
	n.setStateLocked(ns)
	go n.broadcast(ns)
}

// loop sends heartbeats, runs the election rule, retries deactivations and starts recoveries.
func (n *clusterNode) loop() {
	defer n.wg.Done()
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		n.heartbeatRound()
		n.tick()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

type heartbeatMsg struct {
	From  uint64        `json:"from"`
	State *clusterState `json:"state"`
}

type heartbeatReply struct {
	PeerID uint64        `json:"peer_id"`
	State  *clusterState `json:"state"`
}

// heartbeatRound sends this peer's state to every other peer and takes in their answers.
func (n *clusterNode) heartbeatRound() {
	n.mu.Lock()
	st := n.state
	n.mu.Unlock()
	if st == nil {
		return
	}
	n.broadcast(st)
}

func (n *clusterNode) sendHeartbeat(id uint64, uri string, st *clusterState) {
	ctx, cancel := context.WithTimeout(n.ctx, heartbeatTimeout)
	defer cancel()
	var rep heartbeatReply
	err := n.call(ctx, uri, "/internal/heartbeat", heartbeatMsg{From: n.id, State: st}, &rep)
	if n.ctx.Err() != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		f := n.failures[uri]
		if f == nil {
			f = &sendFailure{}
			n.failures[uri] = f
		}
		f.Count++
		f.LatestError = err.Error()
		f.LatestErrorTimestamp = time.Now().UTC().Format(time.RFC3339Nano)
		if !n.unreachable[id] {
			n.unreachable[id] = true
			n.log.Warn(fmt.Sprintf("Failed to send a message to peer %d (%s): %v", id, uri, err), "target", "qdrant::consensus")
		}
		return
	}
	if rep.PeerID != id {
		return // another process answers on that address
	}
	delete(n.failures, uri)
	if n.unreachable[id] {
		delete(n.unreachable, id)
		n.log.Info(fmt.Sprintf("Peer %d (%s) is reachable", id, uri), "target", "qdrant::consensus")
	}
	n.lastHeard[id] = time.Now()
	n.adoptLocked(rep.State)
}

// broadcast pushes a new state to every other peer right away (the leader does this after each change).
func (n *clusterNode) broadcast(st *clusterState) {
	var wg sync.WaitGroup
	for id, uri := range st.Peers {
		if id == n.id {
			continue
		}
		wg.Add(1)
		go func(id uint64, uri string) {
			defer wg.Done()
			n.sendHeartbeat(id, uri, st)
		}(id, uri)
	}
	wg.Wait()
}

// tick runs the periodic work after a heartbeat round.
func (n *clusterNode) tick() {
	now := time.Now()
	n.mu.Lock()
	n.lastLoop = now
	n.electLocked(now)
	var deact []replicaKey
	for k, p := range n.disabled {
		if !p.inFlight {
			p.inFlight = true
			deact = append(deact, k)
		}
	}
	recoveries := n.plannedRecoveriesLocked(now)
	var stale []clusterOp
	if n.isLeaderLocked(now) {
		for _, tr := range n.state.Transfers {
			last := n.started
			if t, ok := n.lastHeard[tr.To]; ok && t.After(last) {
				last = t
			}
			if tr.To != n.id && now.Sub(last) > 2*peerDownAfter {
				stale = append(stale, clusterOp{Kind: opAbortTransfer, Collection: tr.Collection, Gen: tr.Gen,
					Shard: tr.Shard, Peer: tr.To, From: tr.From})
			}
		}
	}
	var newURI string
	if n.state != nil && n.uri != "" && n.state.Peers[n.id] != n.uri && !n.uriPending && n.syncedLocked(now) {
		newURI, n.uriPending = n.uri, true
	}
	n.mu.Unlock()

	for _, op := range stale {
		n.log.Warn(fmt.Sprintf("Aborting shard transfer %s:%d to peer %d: the peer is down", op.Collection, op.Shard,
			op.Peer), "target", "collection::shards::transfer")
		if _, err := n.applyAsLeader(op); err != nil && !errors.Is(err, errOpConflict) {
			n.log.Warn("abort transfer: "+err.Error(), "target", "collection::shards::transfer")
		}
	}
	if newURI != "" {
		go func() {
			ctx, cancel := context.WithTimeout(n.ctx, metaOpTimeout)
			defer cancel()
			if err := n.propose(ctx, clusterOp{Kind: opAddPeer, Peer: n.id, URI: newURI}); err == nil {
				n.log.Info("Updated this peer's URI to "+newURI, "target", "qdrant::consensus")
			}
			n.mu.Lock()
			n.uriPending = false
			n.mu.Unlock()
		}()
	}

	for _, k := range deact {
		go n.retryDeactivation(k)
	}
	for _, r := range recoveries {
		n.wg.Add(1)
		go n.recover(r)
	}
}

type recoveryPlan struct {
	key    shardKey
	from   uint64
	expect string
}

// startupSettledLocked: after a start, the replica check waits until every known peer answered or peerDownAfter
// passed, so that it sees the live replicas.
func (n *clusterNode) startupSettledLocked(now time.Time) bool {
	if now.Sub(n.started) >= peerDownAfter {
		return true
	}
	for id := range n.state.Peers {
		if id == n.id {
			continue
		}
		if t, ok := n.lastHeard[id]; !ok || !t.After(n.started) {
			return false
		}
	}
	return true
}

// sourceLocked picks the Active replica on a live peer (other than this one) with the smallest peer id.
func (n *clusterNode) sourceLocked(key shardKey, m *collMeta, live map[uint64]bool) uint64 {
	var best uint64
	for _, r := range m.Shards[key.shard] {
		if r.Peer == n.id || r.State != replicaActive || !live[r.Peer] {
			continue
		}
		if _, off := n.disabled[replicaKey{key, r.Peer}]; off {
			continue
		}
		if best == 0 || r.Peer < best {
			best = r.Peer
		}
	}
	return best
}

// plannedRecoveriesLocked decides which local replicas need a shard transfer: at start every replica that has an
// Active copy on a live peer (it may have missed writes while down); later every Dead replica, and Partial replicas
// whose transfer is not running here (a restart during a transfer).
func (n *clusterNode) plannedRecoveriesLocked(now time.Time) []recoveryPlan {
	if n.state == nil || !n.syncedLocked(now) {
		return nil
	}
	startup := !n.startupDone
	if startup && !n.startupSettledLocked(now) {
		return nil
	}
	live := n.liveLocked(now)
	var out []recoveryPlan
	names := make([]string, 0, len(n.state.Collections))
	for name := range n.state.Collections {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m := n.state.Collections[name]
		for s := range m.Shards {
			shard := uint32(s)
			r := m.replica(shard, n.id)
			if r == nil {
				continue
			}
			key := shardKey{name, m.Gen, shard}
			if n.recovering[key] || now.Before(n.retryAt[key]) {
				continue
			}
			if r.State == replicaActive && !startup {
				continue
			}
			src := n.sourceLocked(key, m, live)
			if src == 0 {
				continue // Active without another Active copy: this replica is the source of truth
			}
			n.recovering[key] = true
			out = append(out, recoveryPlan{key: key, from: src, expect: r.State})
		}
	}
	n.startupDone = true
	return out
}

// recover runs a shard transfer to this peer (Qdrant's stream_records): Partial; after the transfer delay the
// source pushes its replica with its own key (handleTransferPush), this peer merges it (points it received
// directly since the start win); then Active.
func (n *clusterNode) recover(p recoveryPlan) {
	defer n.wg.Done()
	k := p.key
	n.applyMu.Lock()
	n.mu.Lock()
	n.tracking[k] = map[pointID]bool{}
	n.mu.Unlock()
	n.applyMu.Unlock()
	failed := true
	defer func() {
		n.mu.Lock()
		delete(n.recovering, k)
		delete(n.tracking, k)
		if failed {
			n.retryAt[k] = time.Now().Add(recoveryBackoff)
		}
		n.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(n.ctx, metaOpTimeout)
	defer cancel()
	op := clusterOp{Kind: opStartTransfer, Collection: k.coll, Gen: k.gen, Shard: k.shard, Peer: n.id, From: p.from,
		Expect: []string{p.expect}}
	if err := n.propose(ctx, op); err != nil {
		n.log.Warn(fmt.Sprintf("Cannot start the transfer of shard %s:%d from peer %d: %v", k.coll, k.shard, p.from, err),
			"target", "collection::shards::transfer")
		return
	}
	n.log.Info(fmt.Sprintf("Started shard transfer %s:%d from peer %d to peer %d (stream_records)", k.coll, k.shard,
		p.from, n.id), "target", "collection::shards::transfer")
	abort := func(why error) {
		n.log.Warn(fmt.Sprintf("Shard transfer %s:%d from peer %d failed: %v", k.coll, k.shard, p.from, why),
			"target", "collection::shards::transfer")
		actx, acancel := context.WithTimeout(n.ctx, metaOpTimeout)
		defer acancel()
		_ = n.propose(actx, clusterOp{Kind: opAbortTransfer, Collection: k.coll, Gen: k.gen, Shard: k.shard,
			Peer: n.id, From: p.from})
	}

	delay := n.transferDelay
	if delay < minTransferDelay {
		delay = minTransferDelay
	}
	select {
	case <-time.After(delay):
	case <-n.ctx.Done():
		return
	}
	n.mu.Lock()
	uri := n.state.Peers[p.from]
	n.mu.Unlock()
	var rep transferPushReply
	pctx, pcancel := context.WithTimeout(n.ctx, 2*internalCallTimeout)
	err := n.call(pctx, uri, "/internal/transfer/push", transferPushReq{Collection: k.coll, Gen: k.gen, Shard: k.shard,
		To: n.id}, &rep)
	pcancel()
	if err != nil {
		if n.ctx.Err() == nil {
			abort(err)
		}
		return
	}
	if err := n.propose(ctx, clusterOp{Kind: opFinishTransfer, Collection: k.coll, Gen: k.gen, Shard: k.shard,
		Peer: n.id, From: p.from}); err != nil {
		n.log.Warn(fmt.Sprintf("Cannot finish the transfer of shard %s:%d: %v", k.coll, k.shard, err),
			"target", "collection::shards::transfer")
		return
	}
	failed = false
	n.log.Info(fmt.Sprintf("Shard transfer %s:%d from peer %d finished: %d points, replica is Active", k.coll, k.shard,
		p.from, rep.Points), "target", "collection::shards::transfer")
}

// retryDeactivation proposes Dead for a replica this peer failed to update.
func (n *clusterNode) retryDeactivation(k replicaKey) {
	n.mu.Lock()
	p := n.disabled[k]
	n.mu.Unlock()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, metaOpTimeout)
	err := n.propose(ctx, p.op)
	cancel()
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur := n.disabled[k]; cur == p {
		if err == nil || errors.Is(err, errOpConflict) || errors.Is(err, errOpMissing) {
			delete(n.disabled, k)
		} else {
			p.inFlight = false
		}
	}
}

// deactivate marks a replica locally disabled and proposes it Dead; with wait it returns once that is committed.
func (n *clusterNode) deactivate(ctx context.Context, k replicaKey, wait bool) error {
	op := clusterOp{Kind: opSetReplicaState, Collection: k.coll, Gen: k.gen, Shard: k.shard, Peer: k.peer,
		State: replicaDead, Expect: []string{replicaActive, replicaPartial}}
	p := &pendingDeactivation{op: op, inFlight: true}
	n.mu.Lock()
	n.disabled[k] = p
	n.mu.Unlock()
	n.log.Warn(fmt.Sprintf("Deactivating replica of shard %s:%d on peer %d after a failed update", k.coll, k.shard, k.peer),
		"target", "collection::shards::replica_set")
	run := func(ctx context.Context) error {
		err := n.propose(ctx, op)
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.disabled[k] == p {
			if err == nil || errors.Is(err, errOpConflict) || errors.Is(err, errOpMissing) {
				delete(n.disabled, k)
			} else {
				p.inFlight = false // the loop retries
			}
		}
		if errors.Is(err, errOpConflict) || errors.Is(err, errOpMissing) {
			return nil
		}
		return err
	}
	if !wait {
		go func() {
			ctx, cancel := context.WithTimeout(n.ctx, deactivationTimeout)
			defer cancel()
			_ = run(ctx)
		}()
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, deactivationTimeout)
	defer cancel()
	return run(ctx)
}

var errNotLeader = errors.New("this peer is not the leader")

// errInvalidMetadataKey: Qdrant puts api_key into gRPC metadata on internal calls and panics at start when it is
// not visible ASCII (transport_channel_pool.rs: "API key contains invalid characters for gRPC metadata").
var errInvalidMetadataKey = errors.New("API key contains invalid characters for gRPC metadata")

// applyAsLeader applies an operation to the state, commits it and pushes the new state to every peer.
func (n *clusterNode) applyAsLeader(op clusterOp) (*clusterState, error) {
	n.mu.Lock()
	if !n.isLeaderLocked(time.Now()) {
		n.mu.Unlock()
		return nil, errNotLeader
	}
	ns := n.state.clone()
	if err := ns.apply(op); err != nil {
		n.mu.Unlock()
		return nil, err
	}
	ns.Commit++
	n.setStateLocked(ns)
	n.mu.Unlock()
	n.log.Info(fmt.Sprintf("Applied %s (commit %d)", op, ns.Commit), "target", "qdrant::consensus")
	n.broadcast(ns)
	return ns, nil
}

type proposeReply struct {
	State *clusterState `json:"state"`
}

// propose has the leader apply op, retrying (the leader may be changing) until ctx ends. Rejections
// (errOpExists, errOpMissing, errOpConflict, invalid operations) are returned at once.
func (n *clusterNode) propose(ctx context.Context, op clusterOp) error {
	last := errors.New("no leader is known")
	for {
		n.mu.Lock()
		var leader uint64
		var uri string
		isLeader := n.isLeaderLocked(time.Now())
		if n.state != nil {
			leader, uri = n.state.Leader, n.state.Peers[n.state.Leader]
		}
		n.mu.Unlock()
		switch {
		case isLeader:
			_, err := n.applyAsLeader(op)
			if !errors.Is(err, errNotLeader) {
				return err
			}
			last = err
		case leader != 0 && leader != n.id && uri != "":
			var rep proposeReply
			actx, cancel := context.WithTimeout(ctx, internalCallTimeout)
			err := n.call(actx, uri, "/internal/propose", op, &rep)
			cancel()
			if err == nil {
				n.adopt(rep.State)
				return nil
			}
			var ce *callError
			if errors.As(err, &ce) {
				switch ce.code {
				case "exists":
					return errOpExists
				case "missing":
					return errOpMissing
				case "conflict":
					return errOpConflict
				case "invalid":
					return errors.New(ce.msg)
				}
			}
			last = err
		case leader == n.id:
			last = errors.New("this peer lost its quorum")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader accepted the operation: %v", last)
		case <-n.ctx.Done():
			return errors.New("shutting down")
		case <-time.After(proposeRetry):
		}
	}
}

type joinReq struct {
	PeerID uint64 `json:"peer_id"`
	URI    string `json:"uri,omitempty"`
	Port   int    `json:"port"`
}

type joinReply struct {
	URI   string        `json:"uri"`
	State *clusterState `json:"state"`
}

// join adds this peer to the cluster through the bootstrap peer (Qdrant's AddPeerToKnown), retrying for
// bootstrapTimeout.
func (n *clusterNode) join(ctx context.Context, bootstrap string) error {
	deadline := time.Now().Add(bootstrapTimeout)
	req := joinReq{PeerID: n.id, URI: n.uri, Port: n.addr.(*net.TCPAddr).Port}
	var lastLog time.Time
	for {
		cctx, cancel := context.WithTimeout(ctx, internalCallTimeout+metaOpTimeout)
		var rep joinReply
		err := n.call(cctx, bootstrap, "/internal/join", req, &rep)
		cancel()
		if err == nil && rep.State != nil {
			n.mu.Lock()
			n.uri = rep.URI
			if rep.State.newerThan(n.state) {
				rep.State.normalize()
				n.setStateLocked(rep.State)
			} else if err := savePersisted(n.dir, &persistedCluster{PeerID: n.id, URI: n.uri, State: n.state}); err != nil {
				n.log.Error("persist cluster state: "+err.Error(), "target", "qdrant::consensus")
			}
			n.mu.Unlock()
			n.log.Info(fmt.Sprintf("Joined the cluster through %s as peer %d (%s)", bootstrap, n.id, rep.URI),
				"target", "qdrant::consensus")
			return nil
		}
		if err == nil {
			err = errors.New("empty answer")
		}
		if time.Since(lastLog) > 5*time.Second {
			n.log.Warn(fmt.Sprintf("Failed to bootstrap from %s: %v; retrying", bootstrap, err), "target", "qdrant::consensus")
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("failed to bootstrap from %s: %v", bootstrap, err)
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted while joining the cluster")
		case <-time.After(500 * time.Millisecond):
		}
	}
}
