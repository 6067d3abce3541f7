package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// clock is the tests' Clock: its time moves only with Add. After fires after a short real pause (so loops that
// wait on it, like the scheduler's poll, keep turning) without moving the time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() { time.Sleep(time.Millisecond); ch <- c.Now() }()
	return ch
}
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type bed struct {
	t      *testing.T
	store  *rotationtest.Store
	nodes  []*rotationtest.Node
	k1     rotation.Key
	clock  *clock
	events []rotation.Event
	logs   bytes.Buffer
	mu     sync.Mutex
	// violations counts moments when a running node refused the store's current key.
	violations int
}

func newBed(t *testing.T, n int) *bed {
	t.Helper()
	b := &bed{t: t, store: rotationtest.NewStore(), clock: &clock{t: testEpoch(t)}}
	k1, err := rotation.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b.k1 = k1
	if _, err := b.store.Publish(context.Background(), "prod", rotation.SlotAdmin, rotation.KeyRecord{Key: k1, RotationID: "adopted", Since: b.clock.Now()}, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		node := rotationtest.NewNode("qdrant-"+string(rune('a'+i)), rotation.Slots{APIKey: k1})
		node.OnApply = b.checkInvariant
		node.Now = b.clock.Now
		b.nodes = append(b.nodes, node)
	}
	return b
}

// checkInvariant: every running node accepts the store's current credentials (admin, and read-only if any).
func (b *bed) checkInvariant() {
	for _, slot := range []rotation.Slot{rotation.SlotAdmin, rotation.SlotReadOnly} {
		cur, err := b.store.ReadCurrent(context.Background(), "prod", slot)
		if err != nil {
			continue
		}
		for _, n := range b.nodes {
			if n.Up() && !n.Accepts(cur.Key) {
				b.mu.Lock()
				b.violations++
				b.mu.Unlock()
			}
		}
	}
}

// edit changes a node's slots by hand (what it is configured with and runs), as an operator's edit and restart would.
func edit(n *rotationtest.Node, change func(*rotation.Slots)) {
	s := n.Configured()
	change(&s)
	n.Set(s)
}

func (b *bed) rotator(opts ...func(*rotation.Options)) *rotation.Rotator {
	b.t.Helper()
	return b.rotatorOn(b.store, opts...)
}

// rotatorOn is a rotator of the bed's nodes over another store (one wrapping the bed's).
func (b *bed) rotatorOn(store rotation.Store, opts ...func(*rotation.Options)) *rotation.Rotator {
	b.t.Helper()
	fp, _ := rotation.NewFingerprinter([]byte("test-fingerprint-secret"))
	o := rotation.Options{
		Deployment: "prod", LeaseTTL: time.Hour, ReadyTimeout: time.Second, Fingerprints: fp, Clock: b.clock,
		Logger:  slog.New(slog.NewJSONHandler(&b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Observe: func(e rotation.Event) { b.mu.Lock(); b.events = append(b.events, e); b.mu.Unlock() },
	}
	for _, f := range opts {
		f(&o)
	}
	nodes := make([]rotation.Node, len(b.nodes))
	for i, n := range b.nodes {
		nodes[i] = n
	}
	r, err := rotation.New(store, nodes, o)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

func (b *bed) current() rotation.KeyRecord {
	b.t.Helper()
	cur, err := b.store.ReadCurrent(context.Background(), "prod", rotation.SlotAdmin)
	if err != nil {
		b.t.Fatal(err)
	}
	return cur
}

// assertSettled: every node runs the store's current key alone, refuses every other key given, and the journal is
// final and unlocked.
func (b *bed) assertSettled(refuse ...rotation.Key) {
	b.t.Helper()
	cur := b.current()
	for _, n := range b.nodes {
		if !n.Accepts(cur.Key) {
			b.t.Errorf("node %s refuses the current key", n.Name())
		}
		for _, k := range refuse {
			if n.Accepts(k) {
				b.t.Errorf("node %s still accepts a key it should refuse", n.Name())
			}
		}
	}
	j, _, _ := b.store.ReadJournal(context.Background(), "prod")
	if !j.Phase.Final() || j.Owner != "" {
		b.t.Errorf("journal phase %q owner %q, want final and unlocked", j.Phase, j.Owner)
	}
	if b.violations != 0 {
		b.t.Errorf("%d times a running node refused the store's current key", b.violations)
	}
}

func TestRotateCompletes(t *testing.T) {
	b := newBed(t, 3)
	rep, err := b.rotator().Rotate(context.Background(), rotation.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != rotation.OutcomeCompleted || rep.Restarts != 6 || rep.Kind != rotation.KindScheduled {
		t.Errorf("report outcome %s restarts %d kind %s; want completed, 6, scheduled", rep.Outcome, rep.Restarts, rep.Kind)
	}
	cur := b.current()
	if cur.Version != 2 || cur.Key.Equal(b.k1) || cur.RotationID != rep.RotationID {
		t.Errorf("current record version %d rotation %s; want version 2 of this rotation", cur.Version, cur.RotationID)
	}
	b.assertSettled(b.k1)
	for _, n := range b.nodes {
		if !n.Configured().AltAPIKey.IsZero() {
			t.Errorf("node %s keeps an alt key after promotion", n.Name())
		}
	}
	if got := b.store.Retired("prod", rotation.SlotAdmin); len(got) != 1 || got[0] != 1 {
		t.Errorf("retired versions %v, want [1]", got)
	}
	// Order: every node staged before any promotion.
	var order []string
	for _, e := range b.events {
		if e.Message != "" && strings.HasPrefix(e.Message, "restarting") {
			order = append(order, e.Step+":"+e.Node)
		}
	}
	want := "stage:qdrant-a stage:qdrant-b stage:qdrant-c promote:qdrant-a promote:qdrant-b promote:qdrant-c"
	if strings.Join(order, " ") != want {
		t.Errorf("restart order %v, want %s", order, want)
	}
}

// TestReadOnlyRotatesThroughAJWTBridge: with ReadOnly, read-only consumers move from the old read-only key to a read
// JWT before any node changes its read-only key, then to the new read-only key once every node has it; at no moment
// does a running node refuse what the store holds for either slot.
func TestReadOnlyRotatesThroughAJWTBridge(t *testing.T) {
	b := newBed(t, 3)
	r1, _ := rotation.NewKey()
	for _, n := range b.nodes {
		edit(n, func(s *rotation.Slots) { s.ReadOnlyKey = r1 })
	}
	var kinds []string
	b.store.OnPublish = func(slot rotation.Slot, rec rotation.KeyRecord) {
		if slot == rotation.SlotReadOnly {
			kinds = append(kinds, rec.Kind)
		}
	}
	rep, err := b.rotator(func(o *rotation.Options) { o.ReadOnly = true }).Rotate(context.Background(), rotation.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Restarts != 6 {
		t.Errorf("%d restarts, want 6: the read-only key rides on the admin rotation's two restarts", rep.Restarts)
	}
	// adopted r1, then the bridge JWT, then the new read-only key.
	if strings.Join(kinds, ",") != "key,jwt,key" {
		t.Errorf("read-only record kinds over time %v, want key,jwt,key", kinds)
	}
	ro, err := b.store.ReadCurrent(context.Background(), "prod", rotation.SlotReadOnly)
	if err != nil || ro.Key.Equal(r1) || ro.Kind != rotation.CredentialKey {
		t.Fatalf("read-only record after the rotation: kind %s, err %v", ro.Kind, err)
	}
	for _, n := range b.nodes {
		if !n.Accepts(ro.Key) || n.Accepts(r1) || !n.Configured().JWTRBAC {
			t.Errorf("node %s: new read-only key accepted %v, old refused %v, jwt_rbac %v", n.Name(), n.Accepts(ro.Key), !n.Accepts(r1), n.Configured().JWTRBAC)
		}
	}
	b.assertSettled(b.k1, r1)
	if got := b.store.Retired("prod", rotation.SlotReadOnly); len(got) != 1 || got[0] != 1 {
		t.Errorf("retired read-only versions %v, want [1]", got)
	}
}

// namedKeys returns the three shapes of named key (or none).
func namedKeys(with bool) []rotation.NamedKey {
	if !with {
		return nil
	}
	return []rotation.NamedKey{
		{Name: "admin", Full: true},
		{Name: "search-api", TTL: time.Hour},
		{Name: "products", Write: true, Collections: []string{"products"}, TTL: time.Hour},
	}
}

// TestNamedKeysAreRemintedWithTheNewKey: each named key has its own record; full access is the admin key itself,
// the others JWTs signed with the new admin key carrying their access, published while both keys are accepted.
func TestNamedKeysAreRemintedWithTheNewKey(t *testing.T) {
	b := newBed(t, 2)
	var publishedBeforePromote bool
	b.store.OnPublish = func(slot rotation.Slot, rec rotation.KeyRecord) {
		if slot == "keys/products" {
			publishedBeforePromote = b.nodes[0].Accepts(b.k1) && b.nodes[1].Accepts(b.k1)
		}
	}
	rep, err := b.rotator(func(o *rotation.Options) { o.Keys = namedKeys(true) }).Rotate(context.Background(), rotation.Request{})
	if err != nil {
		t.Fatal(err)
	}
	cur := b.current()
	want := map[rotation.Slot]string{"keys/admin": "", "keys/search-api": `"r"`, "keys/products": `[{"access":"rw","collection":"products"}]`}
	for slot, access := range want {
		rec, err := b.store.ReadCurrent(context.Background(), "prod", slot)
		if err != nil {
			t.Fatalf("%s: %v", slot, err)
		}
		if rec.RotationID != rep.RotationID {
			t.Errorf("%s: rotation %s, want %s", slot, rec.RotationID, rep.RotationID)
		}
		if access == "" {
			if !rec.Key.Equal(cur.Key) || rec.Kind != rotation.CredentialKey {
				t.Errorf("%s: full access should be the admin key itself", slot)
			}
			continue
		}
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(rec.Key.Reveal(), claims, func(*jwt.Token) (any, error) { return []byte(cur.Key.Reveal()), nil }, jwt.WithTimeFunc(b.clock.Now)); err != nil || rec.Kind != rotation.CredentialJWT {
			t.Errorf("%s: not a JWT signed with the new admin key (kind %s): %v", slot, rec.Kind, err)
			continue
		}
		if got, _ := json.Marshal(claims["access"]); string(got) != access {
			t.Errorf("%s: access %s, want %s", slot, got, access)
		}
		if exp, _ := claims.GetExpirationTime(); exp == nil || exp.Sub(b.clock.Now()) > time.Hour+time.Minute {
			t.Errorf("%s: exp %v, want the key's TTL of 1h", slot, exp)
		}
	}
	if !publishedBeforePromote {
		t.Error("named keys were published after the old key was dropped")
	}
	for _, n := range b.nodes {
		if !n.Configured().JWTRBAC {
			t.Errorf("node %s: jwt_rbac is not on", n.Name())
		}
	}
	b.assertSettled(b.k1)
}

func TestRotateTwiceInARow(t *testing.T) {
	b := newBed(t, 2)
	for i := 0; i < 2; i++ {
		if _, err := b.rotator().Rotate(context.Background(), rotation.Request{}); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	if v := b.current().Version; v != 3 {
		t.Errorf("version %d after two rotations, want 3", v)
	}
	b.assertSettled(b.k1)
}

func TestRollbackWhenANodeRefusesToStart(t *testing.T) {
	b := newBed(t, 3)
	b.nodes[1].Refuse = func(s rotation.Slots) bool { return !s.AltAPIKey.IsZero() }
	rep, err := b.rotator().Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrRolledBack) {
		t.Fatalf("error = %v, want ErrRolledBack", err)
	}
	if rep.Outcome != rotation.OutcomeRolledBack || !strings.Contains(rep.Error, "qdrant-b") {
		t.Errorf("report outcome %s error %q; want rolled_back naming qdrant-b", rep.Outcome, rep.Error)
	}
	if cur := b.current(); cur.Version != 1 || !cur.Key.Equal(b.k1) {
		t.Errorf("the consumer record changed (version %d)", cur.Version)
	}
	j, _, _ := b.store.ReadJournal(context.Background(), "prod")
	if j.Phase != rotation.PhaseRolledBack || !strings.Contains(j.Error, "qdrant-b") || !strings.Contains(j.Error, rotation.ErrNodeDown.Error()) {
		t.Errorf("journal phase %s error %q; want rolled_back with the reason", j.Phase, j.Error)
	}
	b.assertSettled(j.PendingKey)
	if b.nodes[2].Restarts() != 0 {
		t.Errorf("node after the failing one was restarted %d times", b.nodes[2].Restarts())
	}
}

func TestEmergencyCutsTheOldKey(t *testing.T) {
	b := newBed(t, 3)
	rep, err := b.rotator().Rotate(context.Background(), rotation.Request{Emergency: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != rotation.KindEmergency || rep.Restarts != 3 || rep.Outcome != rotation.OutcomeCompleted {
		t.Errorf("report kind %s restarts %d outcome %s", rep.Kind, rep.Restarts, rep.Outcome)
	}
	cur := b.current()
	for _, n := range b.nodes {
		if n.Accepts(b.k1) || !n.Accepts(cur.Key) {
			t.Errorf("node %s: old key accepted or new key refused", n.Name())
		}
	}
	if len(b.store.Retired("prod", rotation.SlotAdmin)) != 1 {
		t.Errorf("old key not retired")
	}
}

func TestPromoteFailureRestoresStagedSlotsAndResumes(t *testing.T) {
	b := newBed(t, 3)
	k1 := b.k1
	b.nodes[2].Refuse = func(s rotation.Slots) bool { return s.AltAPIKey.IsZero() && !s.APIKey.Equal(k1) }
	rep, err := b.rotator().Rotate(context.Background(), rotation.Request{})
	if err == nil || rep.Outcome != rotation.OutcomeFailed {
		t.Fatalf("error = %v outcome %s, want a failure", err, rep.Outcome)
	}
	cur := b.current()
	if cur.Key.Equal(k1) {
		t.Fatal("the new key should be published before promotion")
	}
	for _, n := range b.nodes {
		if !n.Accepts(cur.Key) {
			t.Errorf("node %s refuses the current key after the failed promotion", n.Name())
		}
	}
	if b.violations != 0 {
		t.Errorf("%d invariant violations", b.violations)
	}
	b.nodes[2].Refuse = nil
	b.clock.Add(2 * time.Hour)
	rep, err = b.rotator().Rotate(context.Background(), rotation.Request{})
	if err != nil || !rep.Resumed || rep.Outcome != rotation.OutcomeCompleted {
		t.Fatalf("rerun: err %v resumed %v outcome %s", err, rep.Resumed, rep.Outcome)
	}
	b.assertSettled(k1)
}

// crash makes the store refuse every write from now on (the process is gone), then stops the rotator.
type crash struct{ point string }

type freezingStore struct {
	*rotationtest.Store
	frozen bool
}

func (f *freezingStore) WriteJournal(ctx context.Context, dep string, j rotation.Journal, cas int) (int, error) {
	if f.frozen {
		return 0, errors.New("process is dead")
	}
	return f.Store.WriteJournal(ctx, dep, j, cas)
}

func (f *freezingStore) Publish(ctx context.Context, dep string, slot rotation.Slot, rec rotation.KeyRecord, cas int) (int, error) {
	if f.frozen {
		return 0, errors.New("process is dead")
	}
	return f.Store.Publish(ctx, dep, slot, rec, cas)
}

func TestResumeAfterCrashAtEveryCheckpoint(t *testing.T) {
	points := []string{
		"minted",
		"stage:qdrant-a:begin", "stage:qdrant-a:done", "stage:qdrant-b:begin", "stage:qdrant-b:done", "staged",
		"published", "grace",
		"promote:qdrant-a:begin", "promote:qdrant-a:done", "promote:qdrant-b:begin", "promoted",
		"retired",
	}
	for _, readOnly := range []bool{false, true} {
		all := points
		if readOnly {
			all = append(append([]string(nil), points...), "bridged", "keys published", "read-only published")
		}
		for _, point := range all {
			t.Run(fmt.Sprintf("read_only=%v/%s", readOnly, point), func(t *testing.T) { crashAndResume(t, point, readOnly) })
		}
	}
}

func crashAndResume(t *testing.T, point string, readOnly bool) {
	b := newBed(t, 2)
	r1, _ := rotation.NewKey()
	if readOnly {
		for _, n := range b.nodes {
			edit(n, func(s *rotation.Slots) { s.ReadOnlyKey = r1 })
		}
	}
	fs := &freezingStore{Store: b.store}
	run := func(hook func(string)) (rep rotation.Report, err error, crashed bool) {
		nodes := []rotation.Node{b.nodes[0], b.nodes[1]}
		fp, _ := rotation.NewFingerprinter([]byte("test-fingerprint-secret"))
		r, nerr := rotation.New(fs, nodes, rotation.Options{Deployment: "prod", LeaseTTL: time.Hour, ReadyTimeout: time.Second, Fingerprints: fp, Clock: b.clock, Checkpoint: hook, ReadOnly: readOnly, Keys: namedKeys(readOnly)})
		if nerr != nil {
			t.Fatal(nerr)
		}
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(crash); !ok {
					panic(p)
				}
				crashed = true
			}
		}()
		rep, err = r.Rotate(context.Background(), rotation.Request{})
		return rep, err, false
	}
	seen := false
	_, _, crashed := run(func(p string) {
		if p == point {
			seen = true
			fs.frozen = true
			panic(crash{p})
		}
	})
	if !seen || !crashed {
		t.Fatalf("checkpoint %s was never reached", point)
	}
	fs.frozen = false
	b.clock.Add(2 * time.Hour) // the dead rotator's lease expires
	rep, err, _ := run(nil)
	if err != nil {
		t.Fatalf("rerun after a crash at %s: %v", point, err)
	}
	if rep.Outcome != rotation.OutcomeCompleted {
		t.Errorf("rerun outcome %s", rep.Outcome)
	}
	if point != "retired" && !rep.Resumed {
		t.Errorf("rerun did not resume the interrupted rotation")
	}
	if readOnly {
		b.assertSettled(b.k1, r1)
	} else {
		b.assertSettled(b.k1)
	}
}

func TestSecondRotatorIsLockedOut(t *testing.T) {
	b := newBed(t, 2)
	var second error
	first := b.rotator(func(o *rotation.Options) {
		o.Owner = "first"
		o.Checkpoint = func(p string) {
			if p == "minted" {
				_, second = b.rotator(func(o *rotation.Options) { o.Owner = "second" }).Rotate(context.Background(), rotation.Request{})
			}
		}
	})
	if _, err := first.Rotate(context.Background(), rotation.Request{}); err != nil {
		t.Fatal(err)
	}
	var locked *rotation.LockedError
	if !errors.Is(second, rotation.ErrLocked) || !errors.As(second, &locked) || locked.Owner != "first" {
		t.Fatalf("second rotator: %v, want ErrLocked naming the first", second)
	}
	if v := b.current().Version; v != 2 {
		t.Errorf("version %d, want exactly one rotation (2)", v)
	}
}

func TestLostLeaseStopsTheHolder(t *testing.T) {
	b := newBed(t, 2)
	r := b.rotator(func(o *rotation.Options) {
		o.Checkpoint = func(p string) {
			if p == "stage:qdrant-a:done" {
				// Another rotator took over (e.g. this one was paused past its lease).
				j, v, _ := b.store.ReadJournal(context.Background(), "prod")
				j.Owner = "usurper"
				_, _ = b.store.WriteJournal(context.Background(), "prod", j, v)
			}
		}
	})
	_, err := r.Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrLeaseLost) {
		t.Fatalf("error = %v, want ErrLeaseLost", err)
	}
	if b.nodes[1].Restarts() != 0 {
		t.Errorf("the holder went on to restart another node after losing the lease")
	}
	if j, _, _ := b.store.ReadJournal(context.Background(), "prod"); j.Owner != "usurper" {
		t.Errorf("the old holder overwrote the new holder's journal")
	}
}

func TestDriftStopsBeforeAnyChange(t *testing.T) {
	b := newBed(t, 3)
	other, _ := rotation.NewKey()
	b.nodes[1].Set(rotation.Slots{APIKey: other})
	_, err := b.rotator().Rotate(context.Background(), rotation.Request{})
	var drift *rotation.DriftError
	if !errors.As(err, &drift) || !errors.Is(err, rotation.ErrDrift) || len(drift.Nodes) != 1 || drift.Nodes["qdrant-b"] == "" {
		t.Fatalf("error = %v, want a drift report naming qdrant-b only", err)
	}
	for _, n := range b.nodes {
		if n.Restarts() != 0 {
			t.Errorf("node %s restarted despite the drift", n.Name())
		}
	}
	if j, _, _ := b.store.ReadJournal(context.Background(), "prod"); j.RotationID != "" || j.Owner != "" {
		t.Errorf("journal has rotation %q owner %q after a refused preflight", j.RotationID, j.Owner)
	}
}

func TestAdopt(t *testing.T) {
	b := newBed(t, 2)
	b.store.SetVersions("prod", rotation.SlotAdmin, nil)
	if _, err := b.rotator().Rotate(context.Background(), rotation.Request{}); !errors.Is(err, rotation.ErrNoKey) {
		t.Fatalf("without adopt: %v, want ErrNoKey", err)
	}
	rep, err := b.rotator().Rotate(context.Background(), rotation.Request{Adopt: true})
	if err != nil || !rep.Adopted {
		t.Fatalf("adopt: %v (adopted %v)", err, rep.Adopted)
	}
	if first := b.store.Versions("prod", rotation.SlotAdmin)[0]; !first.Key.Equal(b.k1) || first.RotationID != "adopted" {
		t.Errorf("version 1 is not the adopted node key")
	}
	b.assertSettled(b.k1)
}

func TestPlanTouchesNothing(t *testing.T) {
	b := newBed(t, 2)
	p, err := b.rotator().Plan(context.Background(), rotation.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 4 || p.Steps[0].Phase != rotation.PhaseStaging || p.Steps[3].Phase != rotation.PhasePromoting || p.Steps[0].After.AltAPIKey != "<new>" {
		t.Errorf("plan steps %+v", p.Steps)
	}
	for _, n := range b.nodes {
		if n.Restarts() != 0 {
			t.Error("plan restarted a node")
		}
	}
	if v := b.current().Version; v != 1 {
		t.Error("plan wrote to the store")
	}
	if _, v, _ := b.store.ReadJournal(context.Background(), "prod"); v != 0 {
		t.Error("plan wrote the journal")
	}
}

func TestNoKeyMaterialInOutputs(t *testing.T) {
	b := newBed(t, 2)
	b.nodes[1].Refuse = func(s rotation.Slots) bool { return !s.AltAPIKey.IsZero() }
	rep1, err1 := b.rotator().Rotate(context.Background(), rotation.Request{})
	b.nodes[1].Refuse = nil
	rep2, err2 := b.rotator().Rotate(context.Background(), rotation.Request{})
	v, err3 := b.rotator().Verify(context.Background())
	st, err4 := b.rotator().Status(context.Background())
	p, err5 := b.rotator().Plan(context.Background(), rotation.Request{Emergency: true})
	var out bytes.Buffer
	out.WriteString(b.logs.String())
	for _, x := range []any{rep1, rep2, v, st, p, b.events} {
		js, _ := json.Marshal(x)
		out.Write(js)
	}
	for _, e := range []error{err1, err2, err3, err4, err5} {
		if e != nil {
			out.WriteString(e.Error())
		}
	}
	keys := []rotation.Key{b.k1}
	for _, rec := range b.store.Versions("prod", rotation.SlotAdmin) {
		keys = append(keys, rec.Key)
	}
	j, _, _ := b.store.ReadJournal(context.Background(), "prod")
	keys = append(keys, j.PendingKey)
	for i, k := range keys {
		if k.IsZero() {
			continue
		}
		if strings.Contains(out.String(), k.Reveal()) {
			t.Errorf("key %d appears in logs, events, reports or errors", i)
		}
	}
	if !strings.Contains(out.String(), "fp:") {
		t.Error("outputs name no fingerprints at all; the check is vacuous")
	}
}
