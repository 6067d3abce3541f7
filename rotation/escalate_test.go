package rotation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// An emergency request that finds a scheduled rotation interrupted in the journal turns it into an emergency cut:
// the leaked (current) key is refused on every node without any grace, and the report says it was an emergency.
func TestEmergencyEscalatesAnInterruptedScheduledRotation(t *testing.T) {
	for _, point := range []string{"minted", "stage:qdrant-b:begin", "staged", "published", "grace", "promote:qdrant-b:begin", "promoted"} {
		t.Run(point, func(t *testing.T) {
			b := newBed(t, 3)
			fs := &freezingStore{Store: b.store}
			crashAt(t, b, fs, point)
			r := b.rotatorOn(fs, func(o *rotation.Options) { o.Grace = time.Hour })
			b.clock.Add(2 * time.Hour) // the crashed rotator's lease expires
			start := len(b.events)
			rep, err := r.Rotate(context.Background(), rotation.Request{Emergency: true})
			if err != nil {
				t.Fatalf("emergency after a crash at %s: %v", point, err)
			}
			if rep.Kind != rotation.KindEmergency || !rep.Escalated || rep.Outcome != rotation.OutcomeCompleted {
				t.Errorf("report kind %s escalated %v outcome %s, want a completed escalated emergency", rep.Kind, rep.Escalated, rep.Outcome)
			}
			for _, e := range b.events[start:] {
				if e.Step == "grace" || e.Step == "promote" || e.Step == "stage" {
					t.Errorf("the emergency took a scheduled step: %s %s", e.Step, e.Message)
				}
			}
			b.violations = 0 // an emergency cut refuses the published key until its node is back, by design
			b.assertSettled(b.k1)
		})
	}
}

// An emergency that finds a rollback in the journal finishes it, then cuts the leaked key at once in the same run.
func TestEmergencyAfterAnInterruptedRollbackStillCuts(t *testing.T) {
	b := newBed(t, 2)
	b.nodes[1].Refuse = func(s rotation.Slots) bool { return !s.AltAPIKey.IsZero() }
	fs := &freezingStore{Store: b.store}
	crashAt(t, b, fs, "rolling back")
	b.nodes[1].Refuse = nil
	b.clock.Add(2 * time.Hour)
	rep, err := b.rotatorOn(fs).Rotate(context.Background(), rotation.Request{Emergency: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != rotation.KindEmergency || rep.Outcome != rotation.OutcomeCompleted || b.current().Version != 2 {
		t.Errorf("report kind %s outcome %s version %d, want a completed emergency publishing version 2", rep.Kind, rep.Outcome, b.current().Version)
	}
	b.violations = 0
	b.assertSettled(b.k1)
}

// crashAt runs a scheduled rotation that dies at a checkpoint, leaving the journal as a crash would.
func crashAt(t *testing.T, b *bed, fs *freezingStore, point string) {
	t.Helper()
	r := b.rotatorOn(fs, func(o *rotation.Options) {
		o.Checkpoint = func(p string) {
			if p == point {
				fs.frozen = true
				panic(crash{p})
			}
		}
	})
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(crash); !ok {
					panic(p)
				}
			}
		}()
		_, err := r.Rotate(context.Background(), rotation.Request{})
		t.Fatalf("checkpoint %s never reached (%v)", point, errors.Unwrap(err))
	}()
	fs.frozen = false
}
