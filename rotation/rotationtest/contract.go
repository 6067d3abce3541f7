package rotationtest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qdrantrotator/rotator/rotation"
)

// RunStoreContract checks what the rotator relies on from a rotation.Store: Vault KV v2's check-and-set on consumer
// records and journals, records that read back as written, and deployments and slots kept apart. newStore returns
// an empty store for one subtest (it may share a backend, as long as no other subtest sees the same deployments:
// each subtest uses a deployment name of its own).
func RunStoreContract(t *testing.T, newStore func(t *testing.T) rotation.Store) {
	ctx := context.Background()
	k1, k2 := mustKey(t), mustKey(t)
	since := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

	t.Run("ReadCurrentOfANewSlotIsNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.ReadCurrent(ctx, "contract-missing", rotation.SlotAdmin); !errors.Is(err, rotation.ErrNotFound) {
			t.Fatalf("ReadCurrent of a slot never written: %v, want ErrNotFound", err)
		}
	})

	t.Run("PublishReadsBackAsWritten", func(t *testing.T) {
		s := newStore(t)
		rec := rotation.KeyRecord{Key: k1, Kind: rotation.CredentialJWT, Fingerprint: "fp-1", Since: since, RotationID: "r-1"}
		v, err := s.Publish(ctx, "contract-read", rotation.SlotAdmin, rec, 0)
		if err != nil || v != 1 {
			t.Fatalf("first Publish with cas 0: version %d, %v; want 1", v, err)
		}
		got, err := s.ReadCurrent(ctx, "contract-read", rotation.SlotAdmin)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Key.Equal(k1) || got.Kind != rec.Kind || got.Fingerprint != rec.Fingerprint || got.RotationID != rec.RotationID || got.Version != 1 {
			t.Errorf("read back kind %q fingerprint %q rotation %q version %d, key equal %v; want what was written at version 1",
				got.Kind, got.Fingerprint, got.RotationID, got.Version, got.Key.Equal(k1))
		}
		if d := got.Since.Sub(since); d < -time.Second || d > time.Second {
			t.Errorf("since read back %v apart from what was written", d)
		}
	})

	t.Run("PublishIsCheckAndSet", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Publish(ctx, "contract-cas", rotation.SlotAdmin, rotation.KeyRecord{Key: k1, Since: since}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Publish(ctx, "contract-cas", rotation.SlotAdmin, rotation.KeyRecord{Key: k2, Since: since}, 0); !errors.Is(err, rotation.ErrConflict) {
			t.Fatalf("Publish with cas 0 over version 1: %v, want ErrConflict", err)
		}
		if v, err := s.Publish(ctx, "contract-cas", rotation.SlotAdmin, rotation.KeyRecord{Key: k2, Since: since}, 1); err != nil || v != 2 {
			t.Fatalf("Publish with cas 1: version %d, %v; want 2", v, err)
		}
		if _, err := s.Publish(ctx, "contract-cas", rotation.SlotAdmin, rotation.KeyRecord{Key: k1, Since: since}, 1); !errors.Is(err, rotation.ErrConflict) {
			t.Fatalf("Publish with a stale cas: %v, want ErrConflict", err)
		}
		if got, err := s.ReadCurrent(ctx, "contract-cas", rotation.SlotAdmin); err != nil || !got.Key.Equal(k2) || got.Version != 2 {
			t.Fatalf("current after a lost race: version %d, %v; want version 2 with the second key", got.Version, err)
		}
	})

	t.Run("SlotsAndDeploymentsAreApart", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Publish(ctx, "contract-apart-a", rotation.SlotAdmin, rotation.KeyRecord{Key: k1, Since: since}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadCurrent(ctx, "contract-apart-a", rotation.SlotReadOnly); !errors.Is(err, rotation.ErrNotFound) {
			t.Errorf("read-only slot after writing the admin slot: %v, want ErrNotFound", err)
		}
		if _, err := s.ReadCurrent(ctx, "contract-apart-b", rotation.SlotAdmin); !errors.Is(err, rotation.ErrNotFound) {
			t.Errorf("another deployment after writing one: %v, want ErrNotFound", err)
		}
		if v, err := s.Publish(ctx, "contract-apart-a", rotation.SlotReadOnly, rotation.KeyRecord{Key: k2, Since: since}, 0); err != nil || v != 1 {
			t.Errorf("first read-only Publish: version %d, %v; want 1 (versions are per slot)", v, err)
		}
	})

	t.Run("RetireKeepsTheCurrentRecord", func(t *testing.T) {
		s := newStore(t)
		for i, k := range []rotation.Key{k1, k2} {
			if _, err := s.Publish(ctx, "contract-retire", rotation.SlotAdmin, rotation.KeyRecord{Key: k, Since: since}, i); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 { // retiring is idempotent: a resumed rotation retires again
			if err := s.Retire(ctx, "contract-retire", rotation.SlotAdmin, 1, since); err != nil {
				t.Fatalf("Retire version 1: %v", err)
			}
		}
		if got, err := s.ReadCurrent(ctx, "contract-retire", rotation.SlotAdmin); err != nil || !got.Key.Equal(k2) || got.Version != 2 {
			t.Fatalf("current after retiring the old version: version %d, %v; want version 2", got.Version, err)
		}
		if v, err := s.Publish(ctx, "contract-retire", rotation.SlotAdmin, rotation.KeyRecord{Key: k1, Since: since}, 2); err != nil || v != 3 {
			t.Fatalf("Publish after Retire: version %d, %v; want 3", v, err)
		}
	})

	t.Run("ANewJournalIsZeroAtVersionZero", func(t *testing.T) {
		s := newStore(t)
		j, v, err := s.ReadJournal(ctx, "contract-nojournal")
		if err != nil || v != 0 || j.Phase != "" || j.Owner != "" || j.RotationID != "" {
			t.Fatalf("journal never written: version %d, phase %q, owner %q, %v; want a zero journal at 0", v, j.Phase, j.Owner, err)
		}
	})

	t.Run("JournalReadsBackAsWritten", func(t *testing.T) {
		s := newStore(t)
		at := since.Add(time.Minute)
		want := rotation.Journal{
			Owner: "owner-1", LeaseUntil: at, RotationID: "r-9", Kind: rotation.KindEmergency, Phase: rotation.PhaseGrace,
			Node: "q1", NodesDone: []string{"q0", "q2"}, PendingKey: k2, OldKey: k1, BaseVersion: 7,
			PendingReadOnly: k1, OldReadOnly: k2, ReadOnlyBase: 3, Bridge: k2, PublishedAt: at, StartedAt: since,
			UpdatedAt: at, InternalAuth: true, OldFingerprint: "fp-old", PendingFingerprint: "fp-new",
			Error: "why it failed", OpID: "op-1",
		}
		if v, err := s.WriteJournal(ctx, "contract-journal", want, 0); err != nil || v != 1 {
			t.Fatalf("first WriteJournal with cas 0: version %d, %v; want 1", v, err)
		}
		got, v, err := s.ReadJournal(ctx, "contract-journal")
		if err != nil || v != 1 {
			t.Fatalf("ReadJournal: version %d, %v; want 1", v, err)
		}
		if diff := journalDiff(got, want); diff != "" {
			t.Errorf("journal read back differs in %s", diff)
		}
	})

	t.Run("WriteJournalIsCheckAndSet", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.WriteJournal(ctx, "contract-jcas", rotation.Journal{Owner: "a"}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteJournal(ctx, "contract-jcas", rotation.Journal{Owner: "b"}, 0); !errors.Is(err, rotation.ErrConflict) {
			t.Fatalf("WriteJournal with a stale cas: %v, want ErrConflict", err)
		}
		// Many writers with the same cas: exactly one wins (the lease depends on it).
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.WriteJournal(ctx, "contract-jcas", rotation.Journal{Owner: string(rune('c' + i))}, 1); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, rotation.ErrConflict) {
					t.Errorf("a racing WriteJournal: %v, want success or ErrConflict", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d of 8 racing writers with the same cas won, want exactly 1", wins)
		}
		if _, v, err := s.ReadJournal(ctx, "contract-jcas"); err != nil || v != 2 {
			t.Fatalf("journal version after the race: %d, %v; want 2", v, err)
		}
	})
}

// journalDiff names the fields in which two journals differ ("" when none).
func journalDiff(got, want rotation.Journal) string {
	var diff []string
	add := func(field string, same bool) {
		if !same {
			diff = append(diff, field)
		}
	}
	add("Owner", got.Owner == want.Owner)
	add("LeaseUntil", got.LeaseUntil.Equal(want.LeaseUntil))
	add("RotationID", got.RotationID == want.RotationID)
	add("Kind", got.Kind == want.Kind)
	add("Phase", got.Phase == want.Phase)
	add("Node", got.Node == want.Node)
	add("NodesDone", slices.Equal(got.NodesDone, want.NodesDone))
	add("PendingKey", got.PendingKey.Equal(want.PendingKey))
	add("OldKey", got.OldKey.Equal(want.OldKey))
	add("BaseVersion", got.BaseVersion == want.BaseVersion)
	add("PendingReadOnly", got.PendingReadOnly.Equal(want.PendingReadOnly))
	add("OldReadOnly", got.OldReadOnly.Equal(want.OldReadOnly))
	add("ReadOnlyBase", got.ReadOnlyBase == want.ReadOnlyBase)
	add("Bridge", got.Bridge.Equal(want.Bridge))
	add("PublishedAt", got.PublishedAt.Equal(want.PublishedAt))
	add("StartedAt", got.StartedAt.Equal(want.StartedAt))
	add("UpdatedAt", got.UpdatedAt.Equal(want.UpdatedAt))
	add("InternalAuth", got.InternalAuth == want.InternalAuth)
	add("OldFingerprint", got.OldFingerprint == want.OldFingerprint)
	add("PendingFingerprint", got.PendingFingerprint == want.PendingFingerprint)
	add("Error", got.Error == want.Error)
	add("OpID", got.OpID == want.OpID)
	if len(diff) == 0 {
		return ""
	}
	return strings.Join(diff, ", ")
}

// NodeUnderTest is a node for RunNodeContract and how to stop its process by hand.
type NodeUnderTest struct {
	Node rotation.Node
	// Stop stops the node's process as an operator would (`docker stop`).
	Stop func(t *testing.T)
}

// RunNodeContract checks what the rotator relies on from a rotation.Node, with Qdrant's rules (see Node): keys
// take effect when the node restarts, alt_api_key serves as api_key does, a refused key is ErrRejected (401:
// ErrUnauthorized), an expired or badly signed JWT is refused with 403, a stopped node is ErrNodeDown and Apply
// starts it, a node with no key serves every request and Diagnose says why. newNode starts a node configured with
// s, for one subtest, and stops it when the subtest ends.
func RunNodeContract(t *testing.T, newNode func(t *testing.T, s rotation.Slots) NodeUnderTest) {
	ctx := context.Background()
	k1, k2, ro := mustKey(t), mustKey(t), mustKey(t)

	t.Run("ServesItsKeysAndRefusesOthers", func(t *testing.T) {
		want := rotation.Slots{APIKey: k1, ReadOnlyKey: ro}
		n := newNode(t, want).Node
		if n.Name() == "" || n.Method() == "" {
			t.Errorf("Name %q, Method %q: both must say something", n.Name(), n.Method())
		}
		if err := n.Recover(ctx); err != nil {
			t.Errorf("Recover on a node nothing was done to: %v", err)
		}
		if got, err := n.Keys(ctx); err != nil || !got.Equal(want) {
			t.Errorf("Keys: %v (equal to what it was started with: %v)", err, got.Equal(want))
		}
		waitAccepts(t, n, k1)
		waitAccepts(t, n, ro)
		if err := n.Probe(ctx, mustKey(t)); !errors.Is(err, rotation.ErrUnauthorized) {
			t.Errorf("Probe with a key never configured: %v, want ErrUnauthorized", err)
		}
		if d := n.Diagnose(ctx); len(d.Causes) != 0 {
			t.Errorf("Diagnose of a healthy node names causes: %q", d.Causes)
		}
	})

	t.Run("ApplyTakesEffectAtTheRestart", func(t *testing.T) {
		n := newNode(t, rotation.Slots{APIKey: k1}).Node
		waitAccepts(t, n, k1)
		staged := rotation.Slots{APIKey: k1, AltAPIKey: k2}
		apply(t, n, staged)
		waitAccepts(t, n, k2)
		waitAccepts(t, n, k1)
		promoted := rotation.Slots{APIKey: k2}
		apply(t, n, promoted)
		waitAccepts(t, n, k2)
		if err := n.Probe(ctx, k1); !errors.Is(err, rotation.ErrUnauthorized) {
			t.Errorf("Probe with the dropped key after promotion: %v, want ErrUnauthorized", err)
		}
		apply(t, n, promoted) // applying what is configured still restarts, and the node comes back
		waitAccepts(t, n, k2)
	})

	t.Run("JWTFollowsQdrant", func(t *testing.T) {
		n := newNode(t, rotation.Slots{APIKey: k1, JWTRBAC: true}).Node
		waitAccepts(t, n, k1)
		future := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) // far from any clock a test runs on
		past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := n.Probe(ctx, SignJWT(t, k1, &future)); err != nil {
			t.Errorf("a JWT signed with api_key: %v, want served", err)
		}
		if err := n.Probe(ctx, SignJWT(t, k1, nil)); err != nil {
			t.Errorf("a JWT without exp signed with api_key: %v, want served", err)
		}
		for what, tok := range map[string]rotation.Key{
			"an expired JWT":               SignJWT(t, k1, &past),
			"a JWT signed with a stranger": SignJWT(t, mustKey(t), &future),
		} {
			if err := n.Probe(ctx, tok); !errors.Is(err, rotation.ErrRejected) || errors.Is(err, rotation.ErrUnauthorized) {
				t.Errorf("%s: %v, want refused with 403 (ErrRejected, not ErrUnauthorized)", what, err)
			}
		}
		apply(t, n, rotation.Slots{APIKey: k2, AltAPIKey: k1, JWTRBAC: true})
		waitAccepts(t, n, k2)
		if err := n.Probe(ctx, SignJWT(t, k1, &future)); err != nil {
			t.Errorf("a JWT signed with alt_api_key: %v, want served", err)
		}
	})

	t.Run("AStoppedNodeIsDownUntilApplied", func(t *testing.T) {
		u := newNode(t, rotation.Slots{APIKey: k1})
		waitAccepts(t, u.Node, k1)
		u.Stop(t)
		if err := u.Node.Probe(ctx, k1); !errors.Is(err, rotation.ErrNodeDown) {
			t.Fatalf("Probe of a stopped node: %v, want ErrNodeDown", err)
		}
		apply(t, u.Node, rotation.Slots{APIKey: k2})
		waitAccepts(t, u.Node, k2)
	})

	t.Run("ANodeWithNoKeyIsOpenAndSaysWhy", func(t *testing.T) {
		n := newNode(t, rotation.Slots{}).Node
		waitAccepts(t, n, mustKey(t))
		if d := n.Diagnose(ctx); len(d.Causes) == 0 {
			t.Errorf("Diagnose of a node with no key names no cause")
		}
	})
}

// SignJWT mints an HS256 token with Qdrant's manage access, signed with secret; exp nil leaves it out.
func SignJWT(t testing.TB, secret rotation.Key, exp *time.Time) rotation.Key {
	t.Helper()
	claims := jwt.MapClaims{"access": "m"}
	if exp != nil {
		claims["exp"] = exp.Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret.Reveal()))
	if err != nil {
		t.Fatal(err)
	}
	k, err := rotation.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKey(t testing.TB) rotation.Key {
	t.Helper()
	k, err := rotation.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func apply(t *testing.T, n rotation.Node, s rotation.Slots) {
	t.Helper()
	if err := n.Apply(context.Background(), s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got, err := n.Keys(context.Background()); err != nil || !got.Equal(s) {
		t.Fatalf("Keys after Apply: %v (equal to what was applied: %v)", err, got.Equal(s))
	}
}

// waitAccepts waits (up to a minute) for a restarting node to answer, then requires it to serve k.
func waitAccepts(t *testing.T, n rotation.Node, k rotation.Key) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		err := n.Probe(ctx, k)
		if err == nil {
			return
		}
		if errors.Is(err, rotation.ErrRejected) || errors.Is(err, rotation.ErrNodeDown) || ctx.Err() != nil {
			t.Fatalf("node %s does not serve a key it is configured with: %v", n.Name(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}
