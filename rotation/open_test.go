package rotation_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

func TestOpenNodeAtPreflightChangesNothing(t *testing.T) {
	b := newBed(t, 3)
	b.nodes[2].StartOpen() // started without its keys: accepts every request
	rep, err := b.rotator().Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrOpen) || !errors.Is(err, rotation.ErrDrift) || !strings.Contains(err.Error(), "qdrant-c is open") {
		t.Fatalf("error = %v, want an open node qdrant-c reported as drift", err)
	}
	if !strings.Contains(err.Error(), "fake qdrant-c log") || !strings.Contains(err.Error(), "runs with no key") {
		t.Errorf("error %q: want the node's log tail and likely cause", err)
	}
	for _, n := range b.nodes {
		if n.Restarts() != 0 {
			t.Errorf("node %s restarted %d times", n.Name(), n.Restarts())
		}
	}
	if cur := b.current(); cur.Version != 1 || rep.Restarts != 0 {
		t.Errorf("version %d restarts %d, want nothing changed", cur.Version, rep.Restarts)
	}
}

// A node that starts open after its rewrite (Qdrant ignores a config file it cannot read) stops the rotation: every
// node goes back to the current key, and the open node is named with its log.
func TestNodeThatStartsOpenRollsBack(t *testing.T) {
	for _, phase := range []string{"stage", "emergency"} {
		t.Run(phase, func(t *testing.T) {
			b := newBed(t, 3)
			b.nodes[1].LoseKeys = func(s rotation.Slots) bool { return !s.APIKey.Equal(b.k1) || !s.AltAPIKey.IsZero() }
			_, err := b.rotator().Rotate(context.Background(), rotation.Request{Emergency: phase == "emergency"})
			if !errors.Is(err, rotation.ErrRolledBack) {
				t.Fatalf("error = %v, want rolled back", err)
			}
			j, _, _ := b.store.ReadJournal(context.Background(), "prod")
			if !strings.Contains(j.Error, "qdrant-b is open") || !strings.Contains(j.Error, "fake qdrant-b log") {
				t.Errorf("journal error %q: want qdrant-b named open, with its log", j.Error)
			}
			if phase == "emergency" {
				b.violations = 0 // an emergency cut refuses the published key until the nodes are back, by design
			}
			b.assertSettled(j.PendingKey)
			stranger, _ := rotation.NewKey()
			for _, n := range b.nodes {
				if n.Accepts(stranger) {
					t.Errorf("node %s is left open", n.Name())
				}
			}
		})
	}
}

func TestVerifyReportsAnOpenNode(t *testing.T) {
	b := newBed(t, 2)
	b.nodes[0].StartOpen()
	_, err := b.rotator().Verify(context.Background())
	if !errors.Is(err, rotation.ErrDrift) || !strings.Contains(err.Error(), "qdrant-a") || !strings.Contains(err.Error(), "open") {
		t.Fatalf("verify: %v, want drift naming open node qdrant-a", err)
	}
}

func TestAStoppedNodeIsStartedAndSaidSo(t *testing.T) {
	b := newBed(t, 2)
	r := b.rotator(func(o *rotation.Options) {
		o.Checkpoint = func(p string) {
			if p == "minted" {
				b.nodes[1].Stop() // stopped by hand, after the preflight would have seen it
			}
		}
	})
	rep, err := r.Rotate(context.Background(), rotation.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.StartedNodes) != 1 || rep.StartedNodes[0] != "qdrant-b" {
		t.Errorf("report started nodes %v, want [qdrant-b]", rep.StartedNodes)
	}
	found := false
	for _, e := range b.events {
		found = found || (e.Node == "qdrant-b" && strings.Contains(e.Message, "found stopped"))
	}
	if !found {
		t.Error("no event says qdrant-b was found stopped and started")
	}
}

func TestDriftMessageListsNodesCleanly(t *testing.T) {
	e := &rotation.DriftError{Deployment: "prod", Nodes: map[string]string{"q1": "key fp:1: node q1: key rejected (HTTP 401)", "q0": "node q0: node is not running"}}
	want := "deployment prod: drift: not every node accepts the current key: q0: node is not running; q1: key fp:1: key rejected (HTTP 401)"
	if got := e.Error(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// A node found open when the new key is about to be published (after staging) stops the publication: the new key
// is never published, and every node goes back to the current key.
func TestOpenNodeAtPublishIsNeverPublishedTo(t *testing.T) {
	b := newBed(t, 3)
	r := b.rotator(func(o *rotation.Options) {
		o.Checkpoint = func(p string) {
			if p == "staged" {
				b.nodes[0].StartOpen() // it lost its keys (a restart by hand on an unreadable file)
			}
		}
	})
	_, err := r.Rotate(context.Background(), rotation.Request{})
	if !errors.Is(err, rotation.ErrRolledBack) || !strings.Contains(err.Error(), "qdrant-a is open") {
		t.Fatalf("error = %v, want rolled back naming qdrant-a open", err)
	}
	if cur := b.current(); cur.Version != 1 {
		t.Errorf("the consumer record moved to version %d", cur.Version)
	}
	b.assertSettled()
}
