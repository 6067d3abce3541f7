package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ClusterView is what one node says of the Qdrant cluster it belongs to (GET /cluster, GET
// /collections/{c}/cluster, /readyz), read with a key the node accepts.
type ClusterView struct {
	PeerID      uint64
	Leader      uint64
	Peers       int  // peers the node knows, itself included
	ConsensusOK bool // consensus thread "working"
	Ready       bool // /readyz answered 200
	Collections []CollectionView
}

// CollectionView is one collection's replicas as a node sees them.
type CollectionView struct {
	Name              string
	ReplicationFactor int
	// States lists every replica's state (local and remote), e.g. "Active", "Dead", "Partial".
	States    []string
	Transfers int
}

// ClusterNode is a Node that belongs to a Qdrant cluster. qdrantctl implements it.
type ClusterNode interface {
	Node
	Cluster(ctx context.Context, key Key) (ClusterView, error)
}

// ErrClusterUnsafe: a rolling restart now could lose availability or data (replication factor 1, a peer missing,
// consensus not working, replicas not Active).
var ErrClusterUnsafe = errors.New("cluster not safe for a rolling restart")

// ClusterError lists what makes a cluster unsafe.
type ClusterError struct {
	Deployment string
	Problems   []string
}

func (e *ClusterError) Error() string {
	return fmt.Sprintf("deployment %s: %v: %s", e.Deployment, ErrClusterUnsafe, strings.Join(e.Problems, "; "))
}

// Is makes errors.Is(err, ErrClusterUnsafe) hold.
func (e *ClusterError) Is(target error) bool { return target == ErrClusterUnsafe }

// healthy says what keeps one node's view from a settled cluster ("" = settled): ready, consensus working, every
// replica Active, no shard transfer.
func (v ClusterView) healthy() string {
	switch {
	case !v.Ready:
		return "/readyz is not 200 yet"
	case !v.ConsensusOK:
		return "consensus is not working"
	}
	for _, c := range v.Collections {
		for _, s := range c.States {
			if s != "Active" {
				return fmt.Sprintf("collection %s has a %s replica", c.Name, s)
			}
		}
		if c.Transfers > 0 {
			return fmt.Sprintf("collection %s has %d shard transfers running", c.Name, c.Transfers)
		}
	}
	return ""
}

// views reads every node's cluster view with key.
func (r *Rotator) views(ctx context.Context, key Key) (map[string]ClusterView, error) {
	out := map[string]ClusterView{}
	for _, n := range r.nodes {
		cn, ok := n.(ClusterNode)
		if !ok {
			return nil, fmt.Errorf("node %s cannot report cluster state", n.Name())
		}
		v, err := cn.Cluster(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("node %s: cluster state: %w", n.Name(), err)
		}
		out[n.Name()] = v
	}
	return out, nil
}

// clusterPreflight refuses a rolling restart that would not be zero-downtime: a collection with replication factor
// 1 (unless AcceptDowntime), a peer missing, consensus not working or not agreeing on a leader, replicas not Active.
func (r *Rotator) clusterPreflight(ctx context.Context, key Key) error {
	views, err := r.views(ctx, key)
	if err != nil {
		return err
	}
	var problems []string
	leaders := map[uint64]bool{}
	rf1 := map[string]bool{}
	for _, n := range r.nodes {
		v := views[n.Name()]
		if v.Peers != len(r.nodes) {
			problems = append(problems, fmt.Sprintf("node %s knows %d peers, the deployment has %d nodes (a peer is missing or not configured)", n.Name(), v.Peers, len(r.nodes)))
		}
		if !v.ConsensusOK {
			problems = append(problems, fmt.Sprintf("node %s: consensus is not working", n.Name()))
		}
		leaders[v.Leader] = true
		if why := v.healthy(); why != "" && v.ConsensusOK {
			problems = append(problems, fmt.Sprintf("node %s: %s", n.Name(), why))
		}
		for _, c := range v.Collections {
			if c.ReplicationFactor < 2 {
				rf1[c.Name] = true
			}
		}
	}
	if len(leaders) != 1 || leaders[0] {
		problems = append(problems, fmt.Sprintf("the nodes do not agree on one leader (%d answers)", len(leaders)))
	}
	if len(rf1) > 0 && !r.opt.AcceptDowntime {
		names := make([]string, 0, len(rf1))
		for c := range rf1 {
			names = append(names, c)
		}
		slices.Sort(names)
		problems = append(problems, fmt.Sprintf("collections with replication_factor 1 would be unavailable while their node restarts: %s (raise it to 2, or accept downtime explicitly)", strings.Join(names, ", ")))
	}
	if len(problems) > 0 {
		return &ClusterError{Deployment: r.opt.Deployment, Problems: problems}
	}
	return nil
}

// othersSettled waits (up to ReadyTimeout) before n restarts until every other peer is up and sees every replica
// Active: restarting n while another peer is down could leave a shard with no live replica.
func (r *Rotator) othersSettled(ctx context.Context, n Node, key Key) error {
	var others []Node
	for _, m := range r.nodes {
		if m.Name() != n.Name() {
			others = append(others, m)
		}
	}
	if _, err := r.waitSettled(ctx, "before node "+n.Name()+" restarts (every other peer must be up with every replica Active)", key, others...); err != nil {
		return fmt.Errorf("not restarting node %s: %w", n.Name(), err)
	}
	return nil
}

// downFirst orders nodes for a rollback: those that are down come first, since restarting them cannot lower the
// cluster's availability and every other restart waits for all peers to be up.
func (r *Rotator) downFirst(ctx context.Context, key Key) []Node {
	out := slices.Clone(r.nodes)
	down := map[string]bool{}
	for _, n := range out {
		down[n.Name()] = errors.Is(n.Probe(ctx, key), ErrNodeDown)
	}
	slices.SortStableFunc(out, func(a, b Node) int {
		switch {
		case down[a.Name()] && !down[b.Name()]:
			return -1
		case down[b.Name()] && !down[a.Name()]:
			return 1
		}
		return 0
	})
	return out
}

// needsInternalAuth says whether the peers authenticate each other with their primary key: the deployment says so,
// or any node's own configuration (have, one per node) enforces internal auth.
func (r *Rotator) needsInternalAuth(have []Slots) bool {
	return r.opt.InternalAuth || slices.ContainsFunc(have, func(s Slots) bool { return s.InternalAuth })
}

// nodeSlots reads the slots every node is configured with.
func (r *Rotator) nodeSlots(ctx context.Context) ([]Slots, error) {
	have := make([]Slots, len(r.nodes))
	for i, n := range r.nodes {
		var err error
		if have[i], err = n.Keys(ctx); err != nil {
			return nil, err
		}
	}
	return have, nil
}

// replan, on a resume, derives the plan again from what the deployment and the nodes need now: when the peers
// enforce internal auth and the journal's plan did not know it, a rotation waiting to promote goes through the swap
// first (every node K2 + alt K1), so promoted peers never refuse the K1 their peers still send.
func (h *holder) replan(ctx context.Context) error {
	if h.lease.journal().InternalAuth {
		return nil
	}
	have, err := h.nodeSlots(ctx)
	if err != nil || !h.needsInternalAuth(have) {
		return err
	}
	err = h.writeJournal(ctx, func(j *Journal) {
		j.InternalAuth = true
		if j.Phase == PhasePromoting {
			j.Phase, j.NodesDone, j.Node = PhaseSwapping, nil, ""
		}
	})
	if err != nil {
		return err
	}
	h.emitJ(h.lease.journal(), Event{Step: "replanned", Message: fmt.Sprintf("the peers enforce internal auth: 3 restarts per node (resuming from %s)", h.lease.journal().Phase)})
	return nil
}

// orderNodes returns the remaining nodes in restart order: followers first, the current leader last; and the
// leader's name ("" when no node names one, or outside a cluster). known are views the nodes gave a moment ago (the
// settle check that just passed); the nodes it lacks are asked.
func (r *Rotator) orderNodes(ctx context.Context, remaining []Node, key Key, known map[string]ClusterView) ([]Node, string) {
	if !r.opt.Cluster {
		return remaining, ""
	}
	var leader uint64
	ids := map[string]uint64{}
	for _, n := range r.nodes {
		v, ok := known[n.Name()]
		if !ok {
			cn, isPeer := n.(ClusterNode)
			if !isPeer {
				continue
			}
			var err error
			if v, err = cn.Cluster(ctx, key); err != nil {
				continue
			}
		}
		ids[n.Name()] = v.PeerID
		if v.Leader != 0 {
			leader = v.Leader
		}
	}
	leaderName := ""
	for name, id := range ids {
		if id == leader && leader != 0 {
			leaderName = name
		}
	}
	out := slices.Clone(remaining)
	slices.SortStableFunc(out, func(a, b Node) int {
		la, lb := a.Name() == leaderName, b.Name() == leaderName
		switch {
		case la && !lb:
			return 1
		case lb && !la:
			return -1
		}
		return 0
	})
	return out, leaderName
}

// waitSettled waits (up to ReadyTimeout) after a restart until each of nodes reports a settled cluster: /readyz 200,
// every replica of every collection Active, no shard transfers. Between rotation steps every node is asked, not
// only the restarted one: the others must have seen its replicas come back before the next node goes down. It
// returns each node's view as the check that passed saw it.
func (r *Rotator) waitSettled(ctx context.Context, when string, key Key, nodes ...Node) (map[string]ClusterView, error) {
	last := ""
	var views map[string]ClusterView
	err := Poll(ctx, r.opt.ReadyTimeout, func() error {
		views = map[string]ClusterView{}
		for _, m := range nodes {
			cn, ok := m.(ClusterNode)
			if !ok {
				continue
			}
			v, err := cn.Cluster(ctx, key)
			if err != nil {
				last = fmt.Sprintf("peer %s is down or unreachable: %v", m.Name(), err)
				return err
			}
			if why := v.healthy(); why != "" {
				last = fmt.Sprintf("node %s: %s", m.Name(), why)
				return errors.New(last)
			}
			views[m.Name()] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the cluster did not settle within %s %s: %s", r.opt.ReadyTimeout, when, last)
	}
	return views, nil
}
