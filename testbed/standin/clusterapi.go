package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// serviceError is StorageError::ServiceError: 500 "Service internal error: <msg>".
type serviceError struct{ msg string }

func (e *serviceError) Error() string { return e.msg }

// names lists the cluster's collections.
func (n *clusterNode) names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []string{}
	if n.state == nil {
		return out
	}
	for name := range n.state.Collections {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func (n *clusterNode) meta(name string) (*collMeta, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == nil {
		return nil, false
	}
	m, ok := n.state.Collections[name]
	return m, ok
}

// collParams are the optional cluster parameters of a create request.
type collParams struct {
	shardNumber, replicationFactor, writeConsistencyFactor *uint32
}

// parseCollParams reads shard_number, replication_factor and write_consistency_factor (positive u32, optional).
func parseCollParams(body map[string]json.RawMessage) (collParams, *bodyError) {
	var p collParams
	var invalid []string
	for _, f := range []struct {
		name string
		dst  **uint32
	}{{"shard_number", &p.shardNumber}, {"replication_factor", &p.replicationFactor},
		{"write_consistency_factor", &p.writeConsistencyFactor}} {
		raw, ok := present(body, f.name)
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 32)
		if err != nil {
			return p, formatError("invalid type: %s, expected u32 for field `%s`", jsonKind(raw), f.name)
		}
		if v == 0 {
			invalid = append(invalid, f.name+": value 0 invalid, must be 1 or larger")
			continue
		}
		u := uint32(v)
		*f.dst = &u
	}
	if len(invalid) > 0 {
		return p, validationError(invalid...)
	}
	return p, nil
}

// createCollection proposes a new collection. Defaults as Qdrant: shard_number = number of peers,
// replication_factor and write_consistency_factor from storage.collection.
func (n *clusterNode) createCollection(ctx context.Context, name string, vc vectorsConfig, p collParams) error {
	n.mu.Lock()
	peers := 1
	if n.state != nil {
		peers = len(n.state.Peers)
	}
	n.mu.Unlock()
	m := &collMeta{Vectors: vc, ShardNumber: uint32(peers), RF: n.defaultRF, WCF: n.defaultWCF}
	if p.shardNumber != nil {
		m.ShardNumber = *p.shardNumber
	}
	if p.replicationFactor != nil {
		m.RF = *p.replicationFactor
	}
	if p.writeConsistencyFactor != nil {
		m.WCF = *p.writeConsistencyFactor
	}
	ctx, cancel := context.WithTimeout(ctx, metaOpTimeout)
	defer cancel()
	err := n.propose(ctx, clusterOp{Kind: opCreateCollection, Collection: name, Meta: m})
	if err != nil && !errors.Is(err, errOpExists) {
		return &serviceError{"Failed to create collection " + name + ": " + err.Error()}
	}
	return err
}

// deleteCollection proposes the deletion; it reports whether the collection existed.
func (n *clusterNode) deleteCollection(ctx context.Context, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, metaOpTimeout)
	defer cancel()
	switch err := n.propose(ctx, clusterOp{Kind: opDeleteCollection, Collection: name}); {
	case err == nil:
		return true, nil
	case errors.Is(err, errOpMissing):
		return false, nil
	default:
		return false, &serviceError{"Failed to delete collection " + name + ": " + err.Error()}
	}
}

// view gathers a collection's points from one Active replica of each shard (the local one first).
func (n *clusterNode) view(ctx context.Context, name string) (*collectionView, error) {
	m, ok := n.meta(name)
	if !ok {
		return nil, collectionNotFound(name)
	}
	v := &collectionView{name: name, vectors: m.Vectors, shardNumber: m.ShardNumber, replicationFactor: m.RF,
		writeConsistencyFactor: m.WCF}
	for s := uint32(0); s < m.ShardNumber; s++ {
		pts, err := n.readShard(ctx, name, m, s)
		if err != nil {
			return nil, err
		}
		v.points = append(v.points, pts...)
	}
	sort.Slice(v.points, func(i, j int) bool { return v.points[i].ID.less(v.points[j].ID) })
	return v, nil
}

func (n *clusterNode) readShard(ctx context.Context, name string, m *collMeta, shard uint32) ([]*storedPoint, error) {
	key := shardKey{name, m.Gen, shard}
	n.mu.Lock()
	live := n.liveLocked(time.Now())
	type cand struct {
		peer uint64
		uri  string
	}
	var remotes []cand
	localActive := false
	for _, r := range m.Shards[shard] {
		if r.State != replicaActive {
			continue
		}
		if _, off := n.disabled[replicaKey{key, r.Peer}]; off {
			continue
		}
		if r.Peer == n.id {
			localActive = true
			continue
		}
		remotes = append(remotes, cand{r.Peer, n.state.Peers[r.Peer]})
	}
	n.mu.Unlock()
	sort.Slice(remotes, func(i, j int) bool {
		if live[remotes[i].peer] != live[remotes[j].peer] {
			return live[remotes[i].peer]
		}
		return remotes[i].peer < remotes[j].peer
	})
	if !localActive && len(remotes) == 0 {
		return nil, &serviceError{fmt.Sprintf(
			"The replica set for shard %d on peer %d does not have enough active replicas", shard, n.id)}
	}
	var errs []string
	if localActive {
		pts, err := n.localShardPoints(name, m.Gen, shard)
		if err == nil {
			return pts, nil
		}
		errs = append(errs, err.Error())
	}
	for _, c := range remotes {
		var rep shardPointsReply
		err := n.call(ctx, c.uri, "/internal/points/shard", shardPointsReq{Collection: name, Gen: m.Gen, Shard: shard}, &rep)
		if err == nil {
			out := make([]*storedPoint, len(rep.Points))
			for i := range rep.Points {
				out[i] = &rep.Points[i]
			}
			return out, nil
		}
		errs = append(errs, err.Error())
	}
	msg := fmt.Sprintf("%d of %d read operations failed:", len(errs), len(errs))
	for _, e := range errs {
		msg += "\n  " + e
	}
	return nil, &serviceError{msg}
}

// upsert writes points through the replica sets of their shards. It does not stop when the client goes away: a
// cancelled update must not look like a failed replica.
func (n *clusterNode) upsert(ctx context.Context, name string, points []storedPoint, wait bool) (uint64, error) {
	ctx = context.WithoutCancel(ctx)
	m, ok := n.meta(name)
	if !ok {
		return 0, collectionNotFound(name)
	}
	byShard := map[uint32][]storedPoint{}
	for _, p := range points {
		if err := m.Vectors.checkVectors(p.Vectors); err != nil {
			return 0, err
		}
		s := shardOf(p.ID, m.ShardNumber)
		byShard[s] = append(byShard[s], p)
	}
	shards := make([]uint32, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Slice(shards, func(i, j int) bool { return shards[i] < shards[j] })
	var op uint64
	for _, s := range shards {
		o, err := n.updateShard(ctx, name, m.Gen, s, byShard[s], wait)
		if err != nil {
			return 0, err
		}
		op = o
	}
	return op, nil
}

type updateResult struct {
	peer  uint64
	state string
	op    uint64
	err   error
}

// updateShard is Qdrant's ShardReplicaSet::update: the update goes to every Active or Partial replica that is not
// locally disabled; it needs min(write_consistency_factor, replicas) successes; failed replicas are deactivated
// (marked Dead, waited for when wait=true); at least one Active replica must have taken it.
func (n *clusterNode) updateShard(ctx context.Context, name string, gen uint64, shard uint32, pts []storedPoint,
	wait bool) (uint64, error) {
	key := shardKey{name, gen, shard}
	req := internalUpsertReq{Collection: name, Gen: gen, Shard: shard, Points: pts, Wait: wait}
	raw, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	n.mu.Lock()
	m, ok := n.state.Collections[name]
	if !ok || m.Gen != gen {
		n.mu.Unlock()
		return 0, collectionNotFound(name)
	}
	wcf := int(m.WCF)
	replicas := append([]replicaInfo(nil), m.Shards[shard]...)
	uris := map[uint64]string{}
	var targets []replicaInfo
	for _, r := range replicas {
		if r.State != replicaActive && r.State != replicaPartial {
			continue
		}
		if _, off := n.disabled[replicaKey{key, r.Peer}]; off {
			continue
		}
		targets = append(targets, r)
		uris[r.Peer] = n.state.Peers[r.Peer]
	}
	n.mu.Unlock()
	if len(targets) == 0 {
		return 0, &serviceError{fmt.Sprintf("The replica set for shard %d on peer %d has no active replica", shard, n.id)}
	}

	results := make([]updateResult, len(targets))
	var wg sync.WaitGroup
	for i, r := range targets {
		wg.Add(1)
		go func(i int, r replicaInfo) {
			defer wg.Done()
			res := updateResult{peer: r.Peer, state: r.State}
			if r.Peer == n.id {
				var local internalUpsertReq
				if res.err = json.Unmarshal(raw, &local); res.err == nil {
					res.op, res.err = n.applyLocal(local)
				}
			} else {
				var rep internalUpsertReply
				cctx, cancel := context.WithTimeout(ctx, internalCallTimeout)
				res.err = n.call(cctx, uris[r.Peer], "/internal/points/upsert", json.RawMessage(raw), &rep)
				cancel()
				res.op = rep.OperationID
			}
			results[i] = res
		}(i, r)
	}
	wg.Wait()

	minimal := wcf
	if len(replicas) < minimal {
		minimal = len(replicas)
	}
	var successes, failures []updateResult
	for _, r := range results {
		if r.err == nil {
			successes = append(successes, r)
		} else {
			failures = append(failures, r)
		}
	}
	failureText := ""
	if len(failures) > 0 {
		failureText = fmt.Sprintf("Failed peer: %d, error: %v", failures[0].peer, failures[0].err)
		for _, f := range failures {
			n.log.Warn(fmt.Sprintf("Failed to update shard %s:%d on peer %d, error: %v", name, shard, f.peer, f.err),
				"target", "collection::shards::replica_set")
		}
		if len(successes) < minimal {
			err := failures[0].err
			var ce *callError
			if errors.As(err, &ce) {
				return 0, &serviceError{ce.Error()}
			}
			return 0, err
		}
		for _, f := range failures {
			if err := n.deactivate(ctx, replicaKey{key, f.peer}, wait); err != nil {
				return 0, &serviceError{fmt.Sprintf("Some replica of shard %d failed to apply operation and "+
					"deactivation timed out after %s. Consistency of this update is not guaranteed. Please retry. %s",
					shard, deactivationTimeout, failureText)}
			}
		}
	}
	var op uint64
	active := false
	for _, s := range successes {
		if s.state == replicaActive {
			if !active || s.peer == n.id {
				op = s.op
			}
			active = true
		}
	}
	if !active {
		return 0, &serviceError{"Failed to apply operation to at least one `Active` replica. Consistency of this " +
			"update is not guaranteed. Please retry. " + failureText}
	}
	return op, nil
}

// readyNow is /readyz in cluster mode: ready once this peer is in a working cluster, made its start-up replica
// check, and every local replica is Active with no transfer running. It latches.
func (n *clusterNode) readyNow() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ready {
		return true
	}
	if n.state == nil || !n.startupDone || !n.syncedLocked(time.Now()) {
		return false
	}
	for name, m := range n.state.Collections {
		for s := range m.Shards {
			r := m.replica(uint32(s), n.id)
			if r == nil {
				continue
			}
			if r.State != replicaActive || n.recovering[shardKey{name, m.Gen, uint32(s)}] {
				return false
			}
		}
	}
	n.ready = true
	n.log.Info("All local shards are ready", "target", "qdrant::common::health")
	return true
}

type peerInfo struct {
	URI string `json:"uri"`
}

type raftInfo struct {
	Term              uint64  `json:"term"`
	Commit            uint64  `json:"commit"`
	PendingOperations int     `json:"pending_operations"`
	Leader            *uint64 `json:"leader"`
	Role              string  `json:"role"`
	IsVoter           bool    `json:"is_voter"`
}

type consensusThreadStatus struct {
	Status     string `json:"consensus_thread_status"`
	LastUpdate string `json:"last_update"`
}

type clusterStatusInfo struct {
	Status                string                 `json:"status"`
	PeerID                uint64                 `json:"peer_id"`
	Peers                 map[string]peerInfo    `json:"peers"`
	RaftInfo              raftInfo               `json:"raft_info"`
	ConsensusThreadStatus consensusThreadStatus  `json:"consensus_thread_status"`
	MessageSendFailures   map[string]sendFailure `json:"message_send_failures"`
}

// clusterStatus is the result of GET /cluster. Without a quorum the peer reports role Candidate and no leader.
func (n *clusterNode) clusterStatus() clusterStatusInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	st := n.state
	out := clusterStatusInfo{Status: "enabled", PeerID: n.id, Peers: map[string]peerInfo{},
		MessageSendFailures: map[string]sendFailure{}}
	for id, uri := range st.Peers {
		out.Peers[strconv.FormatUint(id, 10)] = peerInfo{URI: uri}
	}
	leader := st.Leader
	out.RaftInfo = raftInfo{Term: st.Term, Commit: st.Commit, Leader: &leader, Role: "Follower", IsVoter: true}
	switch {
	case !n.hasQuorumLocked(now):
		out.RaftInfo.Role, out.RaftInfo.Leader = "Candidate", nil
	case st.Leader == n.id:
		out.RaftInfo.Role = "Leader"
	}
	for uri, f := range n.failures {
		out.MessageSendFailures[uri] = *f
	}
	last := n.lastLoop
	if last.IsZero() {
		last = n.started
	}
	out.ConsensusThreadStatus = consensusThreadStatus{Status: "working", LastUpdate: last.UTC().Format(time.RFC3339Nano)}
	return out
}

type localShardInfo struct {
	ShardID     uint32 `json:"shard_id"`
	PointsCount int    `json:"points_count"`
	State       string `json:"state"`
}

type remoteShardInfo struct {
	ShardID uint32 `json:"shard_id"`
	PeerID  uint64 `json:"peer_id"`
	State   string `json:"state"`
}

type shardTransferInfo struct {
	ShardID uint32 `json:"shard_id"`
	From    uint64 `json:"from"`
	To      uint64 `json:"to"`
	Sync    bool   `json:"sync"`
	Method  string `json:"method"`
}

type collectionClusterInfo struct {
	PeerID         uint64              `json:"peer_id"`
	ShardCount     uint32              `json:"shard_count"`
	LocalShards    []localShardInfo    `json:"local_shards"`
	RemoteShards   []remoteShardInfo   `json:"remote_shards"`
	ShardTransfers []shardTransferInfo `json:"shard_transfers"`
}

// collectionCluster is the result of GET /collections/{c}/cluster. A replica this peer failed to update and
// whose deactivation is not committed yet shows Dead, as it is for this peer's updates.
func (n *clusterNode) collectionCluster(name string) (*collectionClusterInfo, error) {
	n.mu.Lock()
	m, ok := n.state.Collections[name]
	if !ok {
		n.mu.Unlock()
		return nil, collectionNotFound(name)
	}
	info := &collectionClusterInfo{PeerID: n.id, ShardCount: m.ShardNumber, LocalShards: []localShardInfo{},
		RemoteShards: []remoteShardInfo{}, ShardTransfers: []shardTransferInfo{}}
	type local struct {
		shard uint32
		state string
	}
	var locals []local
	for s, reps := range m.Shards {
		for _, r := range reps {
			state := r.State
			if _, off := n.disabled[replicaKey{shardKey{name, m.Gen, uint32(s)}, r.Peer}]; off {
				state = replicaDead
			}
			if r.Peer == n.id {
				locals = append(locals, local{uint32(s), state})
			} else {
				info.RemoteShards = append(info.RemoteShards, remoteShardInfo{ShardID: uint32(s), PeerID: r.Peer, State: state})
			}
		}
	}
	for _, t := range n.state.Transfers {
		if t.Collection == name && t.Gen == m.Gen {
			info.ShardTransfers = append(info.ShardTransfers, shardTransferInfo{ShardID: t.Shard, From: t.From, To: t.To,
				Sync: true, Method: "stream_records"})
		}
	}
	n.mu.Unlock()
	sort.Slice(info.RemoteShards, func(i, j int) bool {
		a, b := info.RemoteShards[i], info.RemoteShards[j]
		return a.ShardID < b.ShardID || (a.ShardID == b.ShardID && a.PeerID < b.PeerID)
	})
	for _, l := range locals {
		pts, _ := n.store.shardPoints(name, m.Gen, func(id pointID) bool { return shardOf(id, m.ShardNumber) == l.shard })
		info.LocalShards = append(info.LocalShards, localShardInfo{ShardID: l.shard, PointsCount: len(pts), State: l.state})
	}
	return info, nil
}

// Server-side helpers that pick the standalone store or the cluster.

func (s *server) collectionNames() []string {
	if s.cluster != nil {
		return s.cluster.names()
	}
	return s.store.names()
}

func (s *server) collectionView(ctx context.Context, name string) (*collectionView, error) {
	if s.cluster != nil {
		return s.cluster.view(ctx, name)
	}
	v, ok := s.store.view(name)
	if !ok {
		return nil, collectionNotFound(name)
	}
	return v, nil
}

func (s *server) collectionExists(name string) bool {
	if s.cluster != nil {
		_, ok := s.cluster.meta(name)
		return ok
	}
	_, ok := s.store.count(name)
	return ok
}

// handleCollectionCluster is GET /collections/{name}/cluster; standalone it shows one Active local shard.
func (s *server) handleCollectionCluster(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	if err := s.checkCollection(r, "get_collection_cluster", name, requirements{extras: true}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	if s.cluster != nil {
		info, err := s.cluster.collectionCluster(name)
		if err != nil {
			writeStorageError(w, start, err)
			return
		}
		writeResult(w, start, info)
		return
	}
	n, ok := s.store.count(name)
	if !ok {
		writeStorageError(w, start, collectionNotFound(name))
		return
	}
	writeResult(w, start, collectionClusterInfo{PeerID: s.peerID, ShardCount: 1,
		LocalShards:    []localShardInfo{{ShardID: 0, PointsCount: n, State: replicaActive}},
		RemoteShards:   []remoteShardInfo{},
		ShardTransfers: []shardTransferInfo{}})
}
