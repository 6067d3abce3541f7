package standin

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
)

// Replica states shown by GET /collections/{c}/cluster (Qdrant's ReplicaState). The stand-in uses these three.
const (
	replicaActive  = "Active"
	replicaDead    = "Dead"
	replicaPartial = "Partial"
)

// replicaInfo is one replica of a shard: the peer holding it and its state.
type replicaInfo struct {
	Peer  uint64 `json:"peer"`
	State string `json:"state"`
}

// collMeta is a collection as the cluster knows it: parameters and shard placement with replica states.
type collMeta struct {
	// Gen is the commit that created the collection; a collection deleted and created again gets a new Gen, so
	// a peer that missed both drops its old points.
	Gen         uint64          `json:"gen"`
	Vectors     vectorsConfig   `json:"vectors"`
	ShardNumber uint32          `json:"shard_number"`
	RF          uint32          `json:"replication_factor"`
	WCF         uint32          `json:"write_consistency_factor"`
	Shards      [][]replicaInfo `json:"shards"` // index = shard id
}

// replica returns the replica of peer for shard, or nil.
func (m *collMeta) replica(shard uint32, peer uint64) *replicaInfo {
	if int(shard) >= len(m.Shards) {
		return nil
	}
	for i := range m.Shards[shard] {
		if m.Shards[shard][i].Peer == peer {
			return &m.Shards[shard][i]
		}
	}
	return nil
}

// transferInfo is a running shard transfer (recovery of a replica from an Active one).
type transferInfo struct {
	Collection string `json:"collection"`
	Gen        uint64 `json:"gen"`
	Shard      uint32 `json:"shard_id"`
	From       uint64 `json:"from"`
	To         uint64 `json:"to"`
}

// clusterState is the replicated cluster metadata (what Qdrant keeps in Raft): peers, collections with their
// replica states, shard transfers. Only the leader changes it (apply); every change increments Commit, a new
// leader increments Term. Peers adopt any state that is newer by (Term, Commit).
type clusterState struct {
	Term        uint64               `json:"term"`
	Commit      uint64               `json:"commit"`
	Leader      uint64               `json:"leader"`
	Peers       map[uint64]string    `json:"peers"`
	Collections map[string]*collMeta `json:"collections"`
	Transfers   []transferInfo       `json:"transfers"`
}

func newClusterState(self uint64, uri string) *clusterState {
	return &clusterState{Term: 1, Commit: 1, Leader: self, Peers: map[uint64]string{self: uri},
		Collections: map[string]*collMeta{}, Transfers: []transferInfo{}}
}

// clone deep-copies the state (states are immutable once published).
func (s *clusterState) clone() *clusterState {
	b, err := json.Marshal(s)
	if err != nil {
		panic("standin: encode cluster state: " + err.Error())
	}
	var c clusterState
	if err := json.Unmarshal(b, &c); err != nil {
		panic("standin: decode cluster state: " + err.Error())
	}
	c.normalize()
	return &c
}

func (s *clusterState) normalize() {
	if s.Peers == nil {
		s.Peers = map[uint64]string{}
	}
	if s.Collections == nil {
		s.Collections = map[string]*collMeta{}
	}
	if s.Transfers == nil {
		s.Transfers = []transferInfo{}
	}
}

// newerThan orders states: higher term, then higher commit; on a tie of both, the smaller leader id wins, so two
// peers that claimed the same term converge on one leader.
func (s *clusterState) newerThan(o *clusterState) bool {
	if o == nil {
		return true
	}
	if s.Term != o.Term {
		return s.Term > o.Term
	}
	if s.Commit != o.Commit {
		return s.Commit > o.Commit
	}
	return s.Leader != o.Leader && s.Leader < o.Leader
}

func (s *clusterState) sortedPeers() []uint64 {
	out := make([]uint64, 0, len(s.Peers))
	for id := range s.Peers {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (s *clusterState) transfer(coll string, gen uint64, shard uint32, to uint64) (int, bool) {
	for i, t := range s.Transfers {
		if t.Collection == coll && t.Gen == gen && t.Shard == shard && t.To == to {
			return i, true
		}
	}
	return -1, false
}

func (s *clusterState) dropTransfer(coll string, gen uint64, shard uint32, to uint64) {
	if i, ok := s.transfer(coll, gen, shard, to); ok {
		s.Transfers = append(s.Transfers[:i], s.Transfers[i+1:]...)
	}
}

// placement puts shardNumber shards on rf distinct peers each (capped at the number of peers), round-robin over
// the peers sorted by id: shard s goes to peers s, s+1, ... (mod n). All replicas start Active.
func placement(peers []uint64, shardNumber, rf uint32) [][]replicaInfo {
	n := uint32(len(peers))
	if rf > n {
		rf = n
	}
	out := make([][]replicaInfo, shardNumber)
	for s := uint32(0); s < shardNumber; s++ {
		for j := uint32(0); j < rf; j++ {
			out[s] = append(out[s], replicaInfo{Peer: peers[(s+j)%n], State: replicaActive})
		}
	}
	return out
}

// shardOf is the shard of a point: FNV-1a of the id's canonical text, modulo the shard number.
func shardOf(id pointID, shardNumber uint32) uint32 {
	if shardNumber <= 1 {
		return 0
	}
	h := fnv.New32a()
	if id.uuid != "" {
		h.Write([]byte(id.uuid))
	} else {
		h.Write([]byte(strconv.FormatUint(id.num, 10)))
	}
	return h.Sum32() % shardNumber
}

// Operation kinds of the cluster state machine.
const (
	opAddPeer          = "add_peer"
	opCreateCollection = "create_collection"
	opDeleteCollection = "delete_collection"
	opSetReplicaState  = "set_replica_state"
	opStartTransfer    = "start_transfer"
	opFinishTransfer   = "finish_transfer"
	opAbortTransfer    = "abort_transfer"
)

// clusterOp is a proposed change of the cluster state; the leader applies it.
type clusterOp struct {
	Kind       string    `json:"kind"`
	Peer       uint64    `json:"peer,omitempty"`
	URI        string    `json:"uri,omitempty"`
	Collection string    `json:"collection,omitempty"`
	Gen        uint64    `json:"gen,omitempty"`
	Meta       *collMeta `json:"meta,omitempty"` // create: vectors and parameters (placement is the leader's)
	Shard      uint32    `json:"shard,omitempty"`
	State      string    `json:"state,omitempty"`
	From       uint64    `json:"from,omitempty"`
	// Expect, if not empty, lists the replica states the operation applies to (a compare-and-set).
	Expect []string `json:"expect,omitempty"`
}

// Reasons a proposal is rejected (not retried).
var (
	errOpExists   = errors.New("collection already exists")
	errOpMissing  = errors.New("collection does not exist")
	errOpConflict = errors.New("replica state changed")
)

func (op clusterOp) String() string {
	switch op.Kind {
	case opAddPeer:
		return fmt.Sprintf("%s %d", op.Kind, op.Peer)
	case opCreateCollection, opDeleteCollection:
		return op.Kind + " " + op.Collection
	case opSetReplicaState:
		return fmt.Sprintf("%s %s:%d peer %d -> %s", op.Kind, op.Collection, op.Shard, op.Peer, op.State)
	}
	return fmt.Sprintf("%s %s:%d %d -> %d", op.Kind, op.Collection, op.Shard, op.From, op.Peer)
}

func expects(list []string, state string) bool {
	if len(list) == 0 {
		return true
	}
	for _, s := range list {
		if s == state {
			return true
		}
	}
	return false
}

// apply changes s by op (s is a private copy). It does not touch Commit.
func (s *clusterState) apply(op clusterOp) error {
	switch op.Kind {
	case opAddPeer:
		if op.Peer == 0 || op.URI == "" {
			return errors.New("add_peer needs a peer id and a URI")
		}
		s.Peers[op.Peer] = op.URI
		return nil
	case opCreateCollection:
		if _, ok := s.Collections[op.Collection]; ok {
			return errOpExists
		}
		if op.Meta == nil || op.Meta.ShardNumber == 0 || op.Meta.RF == 0 || op.Meta.WCF == 0 {
			return errors.New("create_collection needs shard_number, replication_factor and write_consistency_factor")
		}
		m := *op.Meta
		m.Gen = s.Commit + 1
		m.Shards = placement(s.sortedPeers(), m.ShardNumber, m.RF)
		s.Collections[op.Collection] = &m
		return nil
	case opDeleteCollection:
		if _, ok := s.Collections[op.Collection]; !ok {
			return errOpMissing
		}
		delete(s.Collections, op.Collection)
		kept := s.Transfers[:0]
		for _, t := range s.Transfers {
			if t.Collection != op.Collection {
				kept = append(kept, t)
			}
		}
		s.Transfers = kept
		return nil
	}

	m, ok := s.Collections[op.Collection]
	if !ok || m.Gen != op.Gen {
		return errOpMissing
	}
	r := m.replica(op.Shard, op.Peer)
	if r == nil {
		return fmt.Errorf("peer %d holds no replica of shard %d of %s", op.Peer, op.Shard, op.Collection)
	}
	switch op.Kind {
	case opSetReplicaState:
		if !expects(op.Expect, r.State) {
			return errOpConflict
		}
		r.State = op.State
		if op.State != replicaPartial {
			s.dropTransfer(op.Collection, op.Gen, op.Shard, op.Peer)
		}
		return nil
	case opStartTransfer:
		src := m.replica(op.Shard, op.From)
		if src == nil || src.State != replicaActive || op.From == op.Peer || !expects(op.Expect, r.State) {
			return errOpConflict
		}
		s.dropTransfer(op.Collection, op.Gen, op.Shard, op.Peer)
		r.State = replicaPartial
		s.Transfers = append(s.Transfers, transferInfo{Collection: op.Collection, Gen: op.Gen, Shard: op.Shard,
			From: op.From, To: op.Peer})
		return nil
	case opFinishTransfer:
		i, ok := s.transfer(op.Collection, op.Gen, op.Shard, op.Peer)
		if !ok || s.Transfers[i].From != op.From || r.State != replicaPartial {
			return errOpConflict
		}
		s.dropTransfer(op.Collection, op.Gen, op.Shard, op.Peer)
		r.State = replicaActive
		return nil
	case opAbortTransfer:
		i, ok := s.transfer(op.Collection, op.Gen, op.Shard, op.Peer)
		if !ok || s.Transfers[i].From != op.From {
			return errOpConflict
		}
		s.dropTransfer(op.Collection, op.Gen, op.Shard, op.Peer)
		if r.State == replicaPartial {
			r.State = replicaDead
		}
		return nil
	}
	return fmt.Errorf("unknown cluster operation %q", op.Kind)
}
