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

// Regressions the model check found, each shrunk to the few steps that matter.

// regBed is a deployment of plain fakes: version 1 of the admin record holds k1, which every node runs.
type regBed struct {
	t     *testing.T
	store *rotationtest.Store
	nodes []*rotationtest.Node
	clock *mcClock
	k1    rotation.Key
}

func newRegBed(t *testing.T, n int) *regBed { return newRegBedOf(t, mcSchedule{nodes: n}) }

// newRegBedOf: with s.readOnly, the nodes also share a read-only key the store does not hold yet.
func newRegBedOf(t *testing.T, s mcSchedule) *regBed {
	t.Helper()
	w, err := newMCWorld(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range w.nodes {
		node.Refuse, node.LoseKeys = nil, nil
	}
	return &regBed{t: t, store: w.store, nodes: w.nodes, clock: w.clock, k1: w.current().Key}
}

func (b *regBed) rotator(owner string, store rotation.Store, wrap func(*rotationtest.Node) rotation.Node, opts ...func(*rotation.Options)) *rotation.Rotator {
	b.t.Helper()
	fp, _ := rotation.NewFingerprinter([]byte("model-check-fingerprint-secret"))
	nodes := make([]rotation.Node, len(b.nodes))
	for i, n := range b.nodes {
		nodes[i] = n
		if wrap != nil {
			nodes[i] = wrap(n)
		}
	}
	if store == nil {
		store = b.store
	}
	o := rotation.Options{Deployment: mcDeployment, LeaseTTL: time.Hour, ReadyTimeout: time.Second, Owner: owner, Fingerprints: fp, Clock: b.clock}
	for _, f := range opts {
		f(&o)
	}
	r, err := rotation.New(store, nodes, o)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

func (b *regBed) journal() rotation.Journal {
	j, _, _ := b.store.ReadJournal(context.Background(), mcDeployment)
	return j
}

func (b *regBed) current() rotation.KeyRecord {
	cur, _ := b.store.ReadCurrent(context.Background(), mcDeployment, rotation.SlotAdmin)
	return cur
}

// assertSettled: the journal is final and unlocked, and every node runs the store's current key alone.
func (b *regBed) assertSettled() {
	b.t.Helper()
	if j := b.journal(); !j.Phase.Final() || j.Owner != "" {
		b.t.Errorf("journal phase %q owner %q, want final and unlocked", j.Phase, j.Owner)
	}
	cur := b.current()
	for _, n := range b.nodes {
		if s := n.Running(); !n.Up() || !s.APIKey.Equal(cur.Key) || !s.AltAPIKey.IsZero() {
			b.t.Errorf("node %s (up %v) does not run the current key alone", n.Name(), n.Up())
		}
	}
}

// An emergency that escalates a scheduled rotation whose new key is already published, and whose cut fails on a
// node, must not turn to a rollback that can never happen (the key is published): the journal stays in the cut, and
// the next run finishes it. Before the fix, every later run failed with "the new key is already published".
func TestEscalatedCutThatFailsAfterThePublishIsFinishedByTheNextRun(t *testing.T) {
	b := newRegBed(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	stopAfterGrace := func(o *rotation.Options) {
		o.Checkpoint = func(p string) {
			if p == "grace" {
				cancel() // a stop request: honoured before the first promotion
			}
		}
	}
	if _, err := b.rotator("scheduled", nil, nil, stopAfterGrace).Rotate(ctx, rotation.Request{}); err == nil {
		t.Fatal("the scheduled rotation was not stopped after its grace")
	}
	if j := b.journal(); j.Phase != rotation.PhasePromoting || b.current().RotationID != j.RotationID {
		t.Fatalf("journal in phase %s; want promoting with the new key published", j.Phase)
	}
	k1 := b.k1
	b.nodes[1].Refuse = func(s rotation.Slots) bool { return s.AltAPIKey.IsZero() && !s.APIKey.Equal(k1) } // the new key alone
	_, err := b.rotator("emergency", nil, nil).Rotate(context.Background(), rotation.Request{Emergency: true})
	if err == nil {
		t.Fatal("the cut succeeded though a node refused to start")
	}
	if j := b.journal(); j.Phase != rotation.PhaseCutting || j.Owner != "" {
		t.Fatalf("after the failed cut: journal phase %s owner %q, want cutting, unlocked (error: %v)", j.Phase, j.Owner, err)
	}
	b.nodes[1].Refuse = nil
	rep, err := b.rotator("rerun", nil, nil).Rotate(context.Background(), rotation.Request{})
	if err != nil || rep.Outcome != rotation.OutcomeCompleted || rep.Kind != rotation.KindEmergency {
		t.Fatalf("the rerun: outcome %s kind %s: %v; want a completed emergency", rep.Outcome, rep.Kind, err)
	}
	b.assertSettled()
	if b.current().Key.Equal(k1) {
		t.Error("the leaked key is still current")
	}
}

// answerLostOnPublish publishes but answers with an error, as a call cancelled after Vault applied it.
type answerLostOnPublish struct{ *rotationtest.Store }

func (s answerLostOnPublish) Publish(ctx context.Context, dep string, slot rotation.Slot, rec rotation.KeyRecord, cas int) (int, error) {
	if _, err := s.Store.Publish(ctx, dep, slot, rec, cas); err != nil {
		return 0, err
	}
	return 0, context.DeadlineExceeded
}

// A rotation whose publish landed though its answer was lost, resumed while a node is stopped, must not roll back
// (the new key is already what consumers read): the journal stays in publishing, and once the node is started again
// the next run finishes the rotation. Before the fix, the journal was stuck in rolling_back for good.
func TestPublishedRotationResumedWithANodeDownIsNotRolledBack(t *testing.T) {
	b := newRegBed(t, 2)
	if _, err := b.rotator("lost-answer", answerLostOnPublish{b.store}, nil).Rotate(context.Background(), rotation.Request{}); err == nil {
		t.Fatal("the publish whose answer was lost reported success")
	}
	if j := b.journal(); j.Phase != rotation.PhasePublishing || b.current().RotationID != j.RotationID {
		t.Fatalf("journal in phase %s; want publishing with the new key published", j.Phase)
	}
	b.nodes[1].Stop()
	_, err := b.rotator("resume", nil, nil).Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrDrift) {
		t.Fatalf("resumed with a node stopped: %v, want a drift error", err)
	}
	if j := b.journal(); j.Phase != rotation.PhasePublishing {
		t.Fatalf("after the resume: journal phase %s, want publishing (no rollback once the key is published)", j.Phase)
	}
	b.nodes[1].Start()
	if rep, err := b.rotator("rerun", nil, nil).Rotate(context.Background(), rotation.Request{}); err != nil || rep.Outcome != rotation.OutcomeCompleted {
		t.Fatalf("the rerun: outcome %s: %v", rep.Outcome, err)
	}
	b.assertSettled()
}

// pausingNode runs pause once, inside the Probe for which at says so, after the probe answered.
type pausingNode struct {
	*rotationtest.Node
	at    func(k rotation.Key) bool
	pause func()
}

func (n *pausingNode) Probe(ctx context.Context, k rotation.Key) error {
	err := n.Node.Probe(ctx, k)
	if n.pause != nil && n.at(k) {
		p := n.pause
		n.pause = nil
		p()
	}
	return err
}

// A rotator frozen past its lease right after publish's checks, while another rotator takes over and rolls the
// nodes back (a node was stopped meanwhile), must not publish when it wakes: the publish is fenced like a node step.
// Before the fix, it published a key no node accepted any more.
func TestFrozenRotatorDoesNotPublishAfterAnotherRolledBack(t *testing.T) {
	b := newRegBed(t, 2)
	last := b.nodes[len(b.nodes)-1]
	takeover := func() {
		b.clock.Add(2 * time.Hour) // the frozen rotator's lease expires
		b.nodes[0].Stop()
		_, err := b.rotator("second", nil, nil).Rotate(context.Background(), rotation.Request{})
		if !errors.Is(err, rotation.ErrRolledBack) {
			t.Errorf("the second rotator: %v, want a rollback", err)
		}
	}
	staged := false // every node is staged: the publish's checks come next
	wrap := func(n *rotationtest.Node) rotation.Node {
		if n != last {
			return n
		}
		return &pausingNode{Node: n, pause: takeover, at: func(k rotation.Key) bool {
			// The last check before the publish: the last node refuses a key never issued.
			return staged && !k.Equal(b.k1) && !k.Equal(b.journal().PendingKey)
		}}
	}
	_, err := b.rotator("frozen", nil, wrap, func(o *rotation.Options) {
		o.Checkpoint = func(p string) { staged = staged || p == "staged" }
	}).Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrLeaseLost) {
		t.Fatalf("the frozen rotator ended with %v, want ErrLeaseLost", err)
	}
	if cur := b.current(); cur.Version != 1 || !cur.Key.Equal(b.k1) {
		t.Fatalf("the frozen rotator published version %d after the second rolled back", cur.Version)
	}
	b.assertSettled()
}

// pausingStore runs pause once, inside the ReadCurrent or WriteJournal for which at says so, before the call.
type pausingStore struct {
	*rotationtest.Store
	at    func(call string) bool
	pause func()
}

func (s *pausingStore) maybePause(call string) {
	if s.pause != nil && s.at(call) {
		p := s.pause
		s.pause = nil
		p()
	}
}

func (s *pausingStore) ReadCurrent(ctx context.Context, dep string, slot rotation.Slot) (rotation.KeyRecord, error) {
	s.maybePause("ReadCurrent " + string(slot))
	return s.Store.ReadCurrent(ctx, dep, slot)
}

func (s *pausingStore) WriteJournal(ctx context.Context, dep string, j rotation.Journal, cas int) (int, error) {
	s.maybePause("WriteJournal")
	return s.Store.WriteJournal(ctx, dep, j, cas)
}

func mcReadOnly(o *rotation.Options) { o.ReadOnly = true }

// A rotator frozen past its lease while checking the read JWT (the bridge for read-only clients), while others
// finish its rotation and begin the next, must not publish its read JWT over the next rotation's when it wakes: the
// bridge's publish is fenced like the admin key's. Before the fix, it put back a JWT signed with a key the next
// rotation retires.
func TestFrozenRotatorDoesNotPutItsReadJWTOverTheNextRotations(t *testing.T) {
	b := newRegBedOf(t, mcSchedule{nodes: 2, readOnly: true})
	last := b.nodes[len(b.nodes)-1]
	var next string // the next rotation's id
	takeover := func() {
		b.clock.Add(2 * time.Hour)
		if _, err := b.rotator("second", nil, nil, mcReadOnly).Rotate(context.Background(), rotation.Request{}); err != nil {
			t.Errorf("the second rotator: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopAfterBridge := func(o *rotation.Options) {
			o.ReadOnly = true
			o.Checkpoint = func(p string) {
				if p == "bridged" {
					cancel()
				}
			}
		}
		rep, _ := b.rotator("third", nil, nil, stopAfterBridge).Rotate(ctx, rotation.Request{})
		next = rep.RotationID
	}
	wrap := func(n *rotationtest.Node) rotation.Node {
		if n != last {
			return n
		}
		return &pausingNode{Node: n, pause: takeover, at: func(k rotation.Key) bool {
			j := b.journal()
			return j.Phase == rotation.PhasePublishing && !j.Bridge.IsZero() && k.Equal(j.Bridge)
		}}
	}
	_, err := b.rotator("frozen", nil, wrap, mcReadOnly).Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrLeaseLost) {
		t.Fatalf("the frozen rotator ended with %v, want ErrLeaseLost", err)
	}
	ro, err := b.store.ReadCurrent(context.Background(), mcDeployment, rotation.SlotReadOnly)
	if err != nil || next == "" || ro.RotationID != next || ro.Kind != rotation.CredentialJWT {
		t.Fatalf("the read-only credential is %s of rotation %s, want the read JWT of the next rotation %s (%v)", ro.Kind, ro.RotationID, next, err)
	}
}

// A rotator frozen between the fence and the publish of its read JWT, while another finishes the rotation, must not
// put the read JWT back over the rotation's new read-only key when it wakes (a JWT that expires in days, where
// read-only clients want a key).
func TestReadJWTIsNeverPublishedOverItsRotationsReadOnlyKey(t *testing.T) {
	b := newRegBedOf(t, mcSchedule{nodes: 2, readOnly: true})
	store := &pausingStore{Store: b.store}
	store.at = func(call string) bool {
		j := b.journal()
		return call == "ReadCurrent read-only" && j.Phase == rotation.PhasePublishing && !j.Bridge.IsZero()
	}
	store.pause = func() {
		b.clock.Add(2 * time.Hour)
		if _, err := b.rotator("second", nil, nil, mcReadOnly).Rotate(context.Background(), rotation.Request{}); err != nil {
			t.Errorf("the second rotator: %v", err)
		}
	}
	_, err := b.rotator("frozen", store, nil, mcReadOnly).Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrLeaseLost) {
		t.Fatalf("the frozen rotator ended with %v, want ErrLeaseLost", err)
	}
	ro, err := b.store.ReadCurrent(context.Background(), mcDeployment, rotation.SlotReadOnly)
	if err != nil || ro.Kind != rotation.CredentialKey {
		t.Fatalf("the read-only credential ends as %s (%v), want the rotation's new read-only key", ro.Kind, err)
	}
	b.assertSettled()
	for _, n := range b.nodes {
		if !n.Running().ReadOnlyKey.Equal(ro.Key) {
			t.Errorf("node %s does not run the current read-only key", n.Name())
		}
	}
}

// A rotator frozen past its lease as it begins to retire (before it publishes the new read-only key), while others
// finish its rotation and run the next, must not publish its read-only key over the next rotation's when it wakes:
// every node refuses it by then.
func TestFrozenRotatorDoesNotPutItsReadOnlyKeyOverTheNextRotations(t *testing.T) {
	b := newRegBedOf(t, mcSchedule{nodes: 2, readOnly: true})
	store := &pausingStore{Store: b.store}
	store.at = func(string) bool {
		j := b.journal()
		return j.Phase == rotation.PhaseRetiring && j.Owner == "frozen"
	}
	store.pause = func() {
		b.clock.Add(2 * time.Hour)
		for _, owner := range []string{"second", "third"} { // the second finishes the frozen one's rotation
			if _, err := b.rotator(owner, nil, nil, mcReadOnly).Rotate(context.Background(), rotation.Request{}); err != nil {
				t.Errorf("the %s rotator: %v", owner, err)
			}
		}
	}
	_, err := b.rotator("frozen", store, nil, mcReadOnly).Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrLeaseLost) {
		t.Fatalf("the frozen rotator ended with %v, want ErrLeaseLost", err)
	}
	b.assertSettled()
	ro, err := b.store.ReadCurrent(context.Background(), mcDeployment, rotation.SlotReadOnly)
	if err != nil || ro.Kind != rotation.CredentialKey || ro.RotationID != b.current().RotationID {
		t.Fatalf("the read-only credential is a %s of rotation %s (%v), want the last rotation's key", ro.Kind, ro.RotationID, err)
	}
	for _, n := range b.nodes {
		if !n.Running().ReadOnlyKey.Equal(ro.Key) {
			t.Errorf("node %s does not run the current read-only key", n.Name())
		}
	}
}

// A rotator frozen past its lease while proving its named keys' JWT on the nodes, while others finish its rotation
// and begin the next, must not publish its named keys over the next rotation's when it wakes: they would be JWTs
// signed with a key the next rotation retires. The named keys' publish is fenced like the admin key's.
func TestFrozenRotatorDoesNotPutItsNamedKeysOverTheNextRotations(t *testing.T) {
	b := newRegBed(t, 2)
	key := rotation.NamedKey{Name: "search", Collections: []string{"c"}, TTL: time.Hour}
	withKeys := func(o *rotation.Options) { o.Keys = []rotation.NamedKey{key} }
	last := b.nodes[len(b.nodes)-1]
	var next string // the next rotation's id
	takeover := func() {
		b.clock.Add(2 * time.Hour)
		if _, err := b.rotator("second", nil, nil, withKeys).Rotate(context.Background(), rotation.Request{}); err != nil {
			t.Errorf("the second rotator: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopAfterKeys := func(o *rotation.Options) {
			withKeys(o)
			o.Checkpoint = func(p string) {
				if p == "keys published" {
					cancel()
				}
			}
		}
		rep, _ := b.rotator("third", nil, nil, stopAfterKeys).Rotate(ctx, rotation.Request{})
		next = rep.RotationID
	}
	wrap := func(n *rotationtest.Node) rotation.Node {
		if n != last {
			return n
		}
		return &pausingNode{Node: n, pause: takeover, at: func(k rotation.Key) bool {
			return b.journal().Phase == rotation.PhasePublishing && strings.Count(k.Reveal(), ".") == 2 // the sample JWT
		}}
	}
	_, err := b.rotator("frozen", nil, wrap, withKeys).Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrLeaseLost) {
		t.Fatalf("the frozen rotator ended with %v, want ErrLeaseLost", err)
	}
	rec, err := b.store.ReadCurrent(context.Background(), mcDeployment, key.Slot())
	if err != nil || next == "" || rec.RotationID != next {
		t.Fatalf("the named key is of rotation %s, want the next rotation's %s (%v)", rec.RotationID, next, err)
	}
}
