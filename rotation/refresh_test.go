package rotation_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// JWT named keys are re-minted once a third of their lifetime is left, independent of the admin rotation, so a
// consumer never holds an expired one (the nodes refuse an expired JWT).
func TestNamedJWTsAreReMintedBeforeTheyExpire(t *testing.T) {
	b := newBed(t, 2)
	keys := namedKeys(true)
	r := b.rotator(func(o *rotation.Options) { o.Keys = keys })
	if _, err := r.Rotate(context.Background(), rotation.Request{}); err != nil {
		t.Fatal(err)
	}
	jwtOf := func(name string) rotation.KeyRecord {
		rec, err := b.store.ReadCurrent(context.Background(), "prod", rotation.Slot("keys/"+name))
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	first := jwtOf("search-api")
	b.clock.Add(30 * time.Minute) // half the hour left: nothing to do
	if _, n, err := r.RefreshNamedKeys(context.Background()); err != nil || n != 0 {
		t.Fatalf("refresh with half the lifetime left: %d keys, %v", n, err)
	}
	b.clock.Add(11 * time.Minute) // 19 minutes left, under a third
	states, n, err := r.RefreshNamedKeys(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("refresh under a third of the lifetime: %d keys, %v; want the 2 JWTs", n, err)
	}
	again := jwtOf("search-api")
	if again.Version != first.Version+1 || again.Key.Equal(first.Key) {
		t.Errorf("search-api not re-minted (version %d -> %d)", first.Version, again.Version)
	}
	for _, st := range states {
		if st.Kind == rotation.CredentialJWT && !st.Expires.Equal(b.clock.Now().Add(time.Hour)) {
			t.Errorf("key %s expires %s, want an hour from now", st.Name, st.Expires)
		}
	}
	b.clock.Add(40 * time.Minute) // the first JWT has expired; the one consumers read now has not
	for _, node := range b.nodes {
		if node.Accepts(first.Key) {
			t.Errorf("node %s accepts an expired JWT", node.Name())
		}
		if !node.Accepts(jwtOf("search-api").Key) {
			t.Errorf("node %s refuses the JWT consumers read", node.Name())
		}
	}
}

// The daemon's schedule loop does the refresh on its own, with no admin rotation due.
func TestScheduleLoopRefreshesNamedKeys(t *testing.T) {
	b := newBed(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := rotation.NewManager(ctx, nil, rotation.Hooks{})
	s, err := rotation.NewSchedule("prod", rotation.ScheduleSpec{MaxAge: 1000 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := b.rotator(func(o *rotation.Options) { o.Keys = namedKeys(true); o.Observe = m.Observer("prod") })
	if _, err := r.Rotate(ctx, rotation.Request{}); err != nil { // turns jwt_rbac on and mints the JWTs
		t.Fatal(err)
	}
	m.Add(r, &s)
	m.RunSchedules(5 * time.Millisecond)
	read := func() int {
		rec, err := b.store.ReadCurrent(context.Background(), "prod", rotation.Slot("keys/products"))
		if err != nil {
			return 0
		}
		return rec.Version
	}
	waitFor(t, func() bool { return read() == 1 })
	b.clock.Add(45 * time.Minute)
	waitFor(t, func() bool { return read() == 2 })
	waitFor(t, func() bool {
		for _, v := range m.Deployments(ctx) {
			for _, k := range v.Keys {
				if k.Name == "products" && k.Expires.Equal(b.clock.Now().Add(time.Hour)) {
					return true
				}
			}
		}
		return false
	})
	if v := b.current().Version; v != 2 {
		t.Errorf("the admin key was rotated (version %d)", v)
	}
	cancel()
	m.Wait()
}

// When a rotation ends, the journal holds no key, and the full-access named key's earlier version (the old admin
// key) is retired like the admin record's, so the retention applies to it too.
func TestRotationEndsWithNoKeyOutsideLabelledVersions(t *testing.T) {
	b := newBed(t, 2)
	r := b.rotator(func(o *rotation.Options) { o.Keys = namedKeys(true) })
	for i := 0; i < 2; i++ {
		if _, err := r.Rotate(context.Background(), rotation.Request{}); err != nil {
			t.Fatal(err)
		}
	}
	j, _, _ := b.store.ReadJournal(context.Background(), "prod")
	for _, k := range []rotation.Key{j.OldKey, j.PendingKey, j.OldReadOnly, j.PendingReadOnly, j.Bridge} {
		if !k.IsZero() {
			t.Error("the journal of an ended rotation still holds a key")
		}
	}
	if j.OldFingerprint == "" || j.PendingFingerprint == "" {
		t.Errorf("journal fingerprints %q %q, want both", j.OldFingerprint, j.PendingFingerprint)
	}
	if got := b.store.Retired("prod", "keys/admin"); len(got) != 1 || got[0] != 1 {
		t.Errorf("retired versions of the full-access named key: %v, want [1] (the first rotation's key is retired by the second)", got)
	}
}

// countingStore counts reads of named key records.
type countingStore struct {
	*rotationtest.Store
	mu    sync.Mutex
	reads int
}

func (s *countingStore) ReadCurrent(ctx context.Context, dep string, slot rotation.Slot) (rotation.KeyRecord, error) {
	if strings.HasPrefix(string(slot), "keys/") {
		s.mu.Lock()
		s.reads++
		s.mu.Unlock()
	}
	return s.Store.ReadCurrent(ctx, dep, slot)
}

// An idle poll reads no named key record: the states the loop keeps say none is due.
func TestIdlePollsReadNoNamedKeys(t *testing.T) {
	b := newBed(t, 2)
	s := &countingStore{Store: b.store}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := rotation.NewManager(ctx, nil, rotation.Hooks{})
	sched, err := rotation.NewSchedule("prod", rotation.ScheduleSpec{MaxAge: 1000 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := b.rotatorOn(s, func(o *rotation.Options) { o.Keys = namedKeys(true); o.Observe = m.Observer("prod") })
	if _, err := r.Rotate(ctx, rotation.Request{}); err != nil {
		t.Fatal(err)
	}
	m.Add(r, &sched)
	m.RunSchedules(5 * time.Millisecond)
	waitFor(t, func() bool {
		for _, v := range m.Deployments(ctx) {
			return len(v.Keys) == 3
		}
		return false
	})
	s.mu.Lock()
	s.reads = 0
	s.mu.Unlock()
	time.Sleep(100 * time.Millisecond) // about 20 polls
	s.mu.Lock()
	reads := s.reads
	s.mu.Unlock()
	if reads != 0 {
		t.Errorf("idle polls read %d named key records, want 0", reads)
	}
	cancel()
	m.Wait()
}
