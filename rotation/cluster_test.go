package rotation_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// fakePeer is a node in a fake cluster whose leader is the live peer with the smallest id.
type fakePeer struct {
	*rotationtest.Node
	id      uint64
	cluster *fakeCluster
}

type fakeCluster struct {
	peers []*fakePeer
	rf    int
	// internalAuth: a peer accepts another's traffic only with that peer's primary key.
	internalAuth bool
	// broken counts moments when a running peer refused a running peer's primary key (replication would break).
	broken int
	order  []string
	// missing peers: the nodes know this many fewer peers than the deployment has.
	missing int
}

func (c *fakeCluster) leader() uint64 {
	var id uint64
	for _, p := range c.peers {
		if p.Up() && (id == 0 || p.id < id) {
			id = p.id
		}
	}
	return id
}

func (p *fakePeer) Cluster(ctx context.Context, key rotation.Key) (rotation.ClusterView, error) {
	if err := p.Probe(ctx, key); err != nil {
		return rotation.ClusterView{}, err
	}
	return rotation.ClusterView{PeerID: p.id, Leader: p.cluster.leader(), Peers: len(p.cluster.peers) - p.cluster.missing, ConsensusOK: true, Ready: true,
		Collections: []rotation.CollectionView{{Name: "c", ReplicationFactor: p.cluster.rf, States: []string{"Active", "Active"}}}}, nil
}

func newFakeCluster(b *bed, rf int, internalAuth bool) *fakeCluster {
	c := &fakeCluster{rf: rf, internalAuth: internalAuth}
	for i, n := range b.nodes {
		p := &fakePeer{Node: n, id: uint64(10 - i), cluster: c} // the last node has the smallest id: the leader
		c.peers = append(c.peers, p)
		prev := n.OnApply
		n.OnApply = func() {
			prev()
			c.order = append(c.order, n.Name())
			for _, from := range c.peers {
				for _, to := range c.peers {
					if from != to && from.Up() && to.Up() && !to.Accepts(from.Running().APIKey) {
						c.broken++
					}
				}
			}
		}
	}
	return c
}

func (b *bed) clusterRotator(c *fakeCluster, opts ...func(*rotation.Options)) *rotation.Rotator {
	b.t.Helper()
	fp, _ := rotation.NewFingerprinter([]byte("test-fingerprint-secret"))
	nodes := make([]rotation.Node, len(c.peers))
	for i, p := range c.peers {
		nodes[i] = p
	}
	o := rotation.Options{Deployment: "prod", Cluster: true, InternalAuth: c.internalAuth, LeaseTTL: 3600e9, ReadyTimeout: 1e9, Fingerprints: fp, Clock: b.clock}
	for _, f := range opts {
		f(&o)
	}
	r, err := rotation.New(b.store, nodes, o)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

func TestClusterThreeRestartsKeepPeerTraffic(t *testing.T) {
	b := newBed(t, 3)
	c := newFakeCluster(b, 2, true)
	rep, err := b.clusterRotator(c).Rotate(context.Background(), rotation.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Restarts != 9 {
		t.Errorf("%d restarts, want 9 (3 per peer with enforce_internal_auth)", rep.Restarts)
	}
	if c.broken != 0 {
		t.Errorf("peer traffic broke %d times with the 3-restart plan", c.broken)
	}
	// The leader (qdrant-c, smallest id) restarts last in every pass.
	for pass := 0; pass < 3; pass++ {
		if got := c.order[pass*3+2]; got != "qdrant-c" {
			t.Errorf("pass %d: last restarted %s, want the leader qdrant-c (order %v)", pass, got, c.order)
		}
	}
	b.assertSettled(b.k1)
}

func TestClusterTwoRestartPlanBreaksPeerTrafficWithInternalAuth(t *testing.T) {
	b := newBed(t, 3)
	c := newFakeCluster(b, 2, true)
	r := b.clusterRotator(c, func(o *rotation.Options) { o.InternalAuth = false }) // the plan that ignores enforce_internal_auth
	if _, err := r.Rotate(context.Background(), rotation.Request{}); err != nil {
		t.Fatal(err)
	}
	if c.broken == 0 {
		t.Error("the 2-restart plan should have had promoted peers refuse their peers' old primary key")
	}
}

func TestClusterPreflightRefusals(t *testing.T) {
	b := newBed(t, 3)
	c := newFakeCluster(b, 1, false)
	_, err := b.clusterRotator(c).Rotate(context.Background(), rotation.Request{})
	var ce *rotation.ClusterError
	if !errors.As(err, &ce) || !errors.Is(err, rotation.ErrClusterUnsafe) || !strings.Contains(err.Error(), "replication_factor 1 would be unavailable while their node restarts: c") {
		t.Fatalf("rf 1: %v", err)
	}
	if _, err := b.clusterRotator(c, func(o *rotation.Options) { o.AcceptDowntime = true }).Rotate(context.Background(), rotation.Request{}); err != nil {
		t.Errorf("rf 1 with accepted downtime: %v", err)
	}
	c.rf, c.missing = 2, 1 // a peer missing from what the nodes know
	_, err = b.clusterRotator(c).Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrClusterUnsafe) || !strings.Contains(err.Error(), "knows 2 peers, the deployment has 3 nodes") {
		t.Errorf("missing peer: %v", err)
	}
}

// Nodes whose own configuration enforces internal auth get the 3-restart plan, whatever the deployment says.
func TestClusterPlanFollowsTheNodesInternalAuth(t *testing.T) {
	b := newBed(t, 3)
	c := newFakeCluster(b, 2, true)
	for _, n := range b.nodes {
		edit(n, func(s *rotation.Slots) { s.InternalAuth = true })
	}
	r := b.clusterRotator(c, func(o *rotation.Options) { o.InternalAuth = false })
	plan, err := r.Plan(context.Background(), rotation.Request{})
	if err != nil || len(plan.Steps) != 9 {
		t.Fatalf("plan: %d steps, %v; want 9 (3 per peer)", len(plan.Steps), err)
	}
	rep, err := r.Rotate(context.Background(), rotation.Request{})
	if err != nil || rep.Restarts != 9 || c.broken != 0 {
		t.Fatalf("restarts %d, peer traffic broken %d times, %v; want 9 and 0", rep.Restarts, c.broken, err)
	}
}

// A rotation journaled with the 2-restart plan is re-planned on resume once the peers enforce internal auth: it
// swaps every node before promoting, so peer traffic never breaks.
func TestClusterResumeReplansForInternalAuth(t *testing.T) {
	b := newBed(t, 3)
	c := newFakeCluster(b, 2, false)
	fs := &freezingStore{Store: b.store}
	crashAt(t, b, fs, "grace") // the journal says: promote next, 2-restart plan
	c.internalAuth = true
	for _, n := range b.nodes {
		edit(n, func(s *rotation.Slots) { s.InternalAuth = true })
	}
	b.clock.Add(2 * time.Hour)
	c.broken = 0
	if _, err := b.clusterRotator(c, func(o *rotation.Options) { o.InternalAuth = false }).Rotate(context.Background(), rotation.Request{}); err != nil {
		t.Fatal(err)
	}
	if c.broken != 0 {
		t.Errorf("peer traffic broke %d times after the resume", c.broken)
	}
	b.assertSettled(b.k1)
}

// A peer that goes down during the grace wait stops the rotation before any other peer restarts, naming it; once it
// is back, a rerun completes.
func TestClusterNeverRestartsAPeerWhileAnotherIsDown(t *testing.T) {
	b := newBed(t, 3)
	c := newFakeCluster(b, 2, false)
	r := b.clusterRotator(c, func(o *rotation.Options) {
		o.Checkpoint = func(p string) {
			if p == "grace" {
				b.nodes[2].Stop()
			}
		}
	})
	_, err := r.Rotate(context.Background(), rotation.Request{})
	if err == nil || !strings.Contains(err.Error(), "peer qdrant-c is down") || !strings.Contains(err.Error(), "not restarting node") {
		t.Fatalf("error %v: want a refusal to restart naming qdrant-c as down", err)
	}
	restarts := 0
	for _, n := range b.nodes {
		restarts += n.Restarts()
	}
	if restarts != 3 {
		t.Errorf("%d restarts, want only the 3 of staging", restarts)
	}
	b.nodes[2].Start()
	if _, err := b.clusterRotator(c).Rotate(context.Background(), rotation.Request{}); err != nil {
		t.Fatalf("rerun with every peer up: %v", err)
	}
	b.assertSettled(b.k1)
}
