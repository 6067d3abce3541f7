package rotation_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// callCountingStore counts the rotator's Store calls and, for each journal write, whether it holds the lease.
type callCountingStore struct {
	rotation.Store
	mu    sync.Mutex
	calls map[string]int
	// effects lists, in order, every journal write ("journal <phase>") and every node restart ("restart").
	effects []string
}

func (s *callCountingStore) count(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[call]++
}

func (s *callCountingStore) ReadCurrent(ctx context.Context, dep string, slot rotation.Slot) (rotation.KeyRecord, error) {
	s.count("ReadCurrent")
	return s.Store.ReadCurrent(ctx, dep, slot)
}

func (s *callCountingStore) Publish(ctx context.Context, dep string, slot rotation.Slot, rec rotation.KeyRecord, cas int) (int, error) {
	s.count("Publish")
	return s.Store.Publish(ctx, dep, slot, rec, cas)
}

func (s *callCountingStore) Retire(ctx context.Context, dep string, slot rotation.Slot, version int, at time.Time) error {
	s.count("Retire")
	return s.Store.Retire(ctx, dep, slot, version, at)
}

func (s *callCountingStore) ReadJournal(ctx context.Context, dep string) (rotation.Journal, int, error) {
	s.count("ReadJournal")
	return s.Store.ReadJournal(ctx, dep)
}

func (s *callCountingStore) WriteJournal(ctx context.Context, dep string, j rotation.Journal, cas int) (int, error) {
	s.count("WriteJournal")
	s.mu.Lock()
	s.effects = append(s.effects, "journal "+string(j.Phase))
	s.mu.Unlock()
	return s.Store.WriteJournal(ctx, dep, j, cas)
}

// A scheduled rotation of N nodes asks the store 9 + 2N times: one journal write per node restart (the fence, which
// also records the node steps done before it) and a fixed number per rotation. Every restart still follows a journal
// write, and the rotation ends with the lease released.
func TestStoreCallsPerRotation(t *testing.T) {
	for _, n := range []int{1, 3, 9} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			b := newBed(t, n)
			s := &callCountingStore{Store: b.store, calls: map[string]int{}}
			for _, node := range b.nodes {
				check := node.OnApply
				node.OnApply = func() {
					check()
					s.mu.Lock()
					s.effects = append(s.effects, "restart")
					s.mu.Unlock()
				}
			}
			rep, err := b.rotatorOn(s).Rotate(context.Background(), rotation.Request{})
			if err != nil || rep.Outcome != rotation.OutcomeCompleted {
				t.Fatalf("rotate: %s: %v", rep.Outcome, err)
			}
			want := map[string]int{"ReadJournal": 1, "ReadCurrent": 1, "Publish": 1, "Retire": 1, "WriteJournal": 5 + 2*n}
			if !maps.Equal(s.calls, want) {
				t.Errorf("store calls %v, want %v", s.calls, want)
			}
			for i, e := range s.effects {
				if e == "restart" && (i == 0 || !strings.HasPrefix(s.effects[i-1], "journal ")) {
					t.Errorf("restart %d does not follow a journal write: %v", i, s.effects)
				}
			}
			if got := slices.Index(s.effects, "journal "+string(rotation.PhaseDone)); got != len(s.effects)-1 {
				t.Errorf("the journal's last write is not the ending (%v)", s.effects)
			}
			if j, _, _ := b.store.ReadJournal(context.Background(), "prod"); j.Owner != "" || j.Phase != rotation.PhaseDone {
				t.Errorf("journal %s owned by %q, want done and released", j.Phase, j.Owner)
			}
			b.assertSettled(b.k1)
		})
	}
}
