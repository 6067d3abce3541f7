package rotation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// A rotator frozen past its lease (SIGSTOP, a long pause) while another takes over and finishes must not apply its
// stale slots when it resumes: every node step is fenced by a check-and-set journal write made just before it.
func TestFrozenRotatorDoesNotApplyStaleSlots(t *testing.T) {
	for _, point := range []string{"stage:qdrant-b:begin", "promote:qdrant-b:begin", "rolling back"} {
		t.Run(point, func(t *testing.T) {
			b := newBed(t, 3)
			if point == "rolling back" {
				b.nodes[2].Refuse = func(s rotation.Slots) bool { return !s.AltAPIKey.IsZero() }
			}
			frozen, resume := make(chan struct{}), make(chan struct{})
			a := b.rotator(func(o *rotation.Options) {
				o.Owner = "rotator-a"
				o.Checkpoint = func(p string) {
					if p == point {
						close(frozen)
						<-resume
					}
				}
			})
			done := make(chan error, 1)
			go func() { _, err := a.Rotate(context.Background(), rotation.Request{}); done <- err }()
			<-frozen
			b.nodes[2].Refuse = nil
			b.clock.Add(2 * time.Hour) // a's lease expires while it is frozen
			if _, err := b.rotator(func(o *rotation.Options) { o.Owner = "rotator-b" }).Rotate(context.Background(), rotation.Request{}); err != nil && !errors.Is(err, rotation.ErrRolledBack) {
				t.Fatalf("the second rotator: %v", err)
			}
			restarts := make([]int, len(b.nodes))
			for i, n := range b.nodes {
				restarts[i] = n.Restarts()
			}
			close(resume)
			if err := <-done; !errors.Is(err, rotation.ErrLeaseLost) {
				t.Errorf("the resumed rotator ended with %v, want ErrLeaseLost", err)
			}
			for i, n := range b.nodes {
				if n.Restarts() != restarts[i] {
					t.Errorf("the resumed rotator restarted node %s after losing its lease", n.Name())
				}
			}
			j, _, _ := b.store.ReadJournal(context.Background(), "prod")
			var retired []rotation.Key
			for _, k := range []rotation.Key{b.k1, j.PendingKey, j.OldKey} {
				if !k.IsZero() && !k.Equal(b.current().Key) {
					retired = append(retired, k)
				}
			}
			b.assertSettled(retired...)
		})
	}
}

// lostAnswerStore applies a journal write but answers with an error (the call was cancelled, or the answer was lost).
type lostAnswerStore struct {
	*rotationtest.Store
	loseNext bool
}

func (s *lostAnswerStore) WriteJournal(ctx context.Context, dep string, j rotation.Journal, cas int) (int, error) {
	v, err := s.Store.WriteJournal(ctx, dep, j, cas)
	if err == nil && s.loseNext {
		s.loseNext = false
		return 0, context.Canceled
	}
	return v, err
}

// A journal write that landed though its caller saw an error (a SIGTERM cancelled it mid-call) does not make the
// holder's next write look like a lost lease: the release after a stop still unlocks the journal.
func TestWriteWhoseAnswerWasLostDoesNotLoseTheLease(t *testing.T) {
	b := newBed(t, 1)
	s := &lostAnswerStore{Store: b.store}
	l, err := rotation.Acquire(context.Background(), s, "prod", "me", time.Hour, b.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	s.loseNext = true
	if err := l.Update(context.Background(), func(j *rotation.Journal) { j.Phase = rotation.PhaseStaging }); err == nil {
		t.Fatal("the write whose answer was lost reported success")
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatalf("release after a write whose answer was lost: %v", err)
	}
	j, _, _ := b.store.ReadJournal(context.Background(), "prod")
	if j.Owner != "" || j.Phase != rotation.PhaseStaging {
		t.Errorf("journal owner %q phase %s, want released and staging", j.Owner, j.Phase)
	}
}
