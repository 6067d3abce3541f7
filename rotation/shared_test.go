package rotation_test

import (
	"context"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

// sharedConfig is one configuration several nodes load when they start, as the pods of a Kubernetes StatefulSet
// load one Secret: a change reaches a node only at its next restart.
type sharedConfig struct {
	slots  rotation.Slots
	change int
	loaded map[string]int // the change each node last started with
	// ignoreUnloaded reports every node as loaded, as an adapter that cannot tell would.
	ignoreUnloaded bool
}

// sharedPeer is a fake cluster peer whose keys come from a sharedConfig.
type sharedPeer struct {
	*fakePeer
	cfg *sharedConfig
}

func (p sharedPeer) Keys(context.Context) (rotation.Slots, error) {
	s := p.cfg.slots
	s.Unloaded = !p.cfg.ignoreUnloaded && p.cfg.loaded[p.Name()] != p.cfg.change
	return s, nil
}

func (p sharedPeer) Apply(ctx context.Context, s rotation.Slots) error {
	if !s.Equal(p.cfg.slots) {
		p.cfg.slots, p.cfg.change = s, p.cfg.change+1
	}
	p.cfg.loaded[p.Name()] = p.cfg.change
	return p.fakePeer.Apply(ctx, s)
}

// rotateShared rotates a 3-peer cluster with enforce_internal_auth whose peers share one configuration.
func rotateShared(t *testing.T, ignoreUnloaded bool) (*bed, *fakeCluster, rotation.Report) {
	b := newBed(t, 3)
	c := newFakeCluster(b, 2, true)
	cfg := &sharedConfig{slots: rotation.Slots{APIKey: b.k1}, loaded: map[string]int{}, ignoreUnloaded: ignoreUnloaded}
	fp, _ := rotation.NewFingerprinter([]byte("test-fingerprint-secret"))
	nodes := make([]rotation.Node, len(c.peers))
	for i, p := range c.peers {
		nodes[i] = sharedPeer{fakePeer: p, cfg: cfg}
	}
	r, err := rotation.New(b.store, nodes, rotation.Options{Deployment: "prod", Cluster: true, InternalAuth: true, LeaseTTL: 3600e9, ReadyTimeout: 1e9, Fingerprints: fp, Clock: b.clock})
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := r.Rotate(context.Background(), rotation.Request{})
	return b, c, rep
}

// A peer whose configuration changed after it started (another peer's restart wrote it) must be restarted even
// though it already answers both keys: in the swap step it still sends its peers the old primary key.
func TestSharedConfigurationRestartsEveryPeerInEveryPass(t *testing.T) {
	b, c, rep := rotateShared(t, false)
	if rep.Restarts != 9 || c.broken != 0 {
		t.Fatalf("%d restarts, peer traffic broke %d times; want 9 and 0", rep.Restarts, c.broken)
	}
	b.assertSettled(b.k1)
}

// The control: an adapter that cannot tell an unloaded configuration skips peers in the swap and breaks peer
// traffic, which is what Slots.Unloaded prevents.
func TestSharedConfigurationWithoutUnloadedSkipsPeers(t *testing.T) {
	_, c, rep := rotateShared(t, true)
	if rep.Restarts == 9 && c.broken == 0 {
		t.Fatalf("the control rotated cleanly (%d restarts, %d breaks): the test above proves nothing", rep.Restarts, c.broken)
	}
	t.Logf("without Unloaded: %d restarts, peer traffic broke %d times", rep.Restarts, c.broken)
}
