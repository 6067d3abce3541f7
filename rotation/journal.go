package rotation

import (
	"slices"
	"time"
)

// Phase is where a rotation stands. The journal records it before each side effect (write-ahead), so a rerun after
// a crash continues from what the store says.
type Phase string

// Phases of a rotation, in order. Done and RolledBack are final.
const (
	PhaseStaging     Phase = "staging"      // every node gets alt_api_key = new key
	PhasePublishing  Phase = "publishing"   // the new key becomes current for consumers
	PhaseGrace       Phase = "grace"        // consumers move to the new key
	PhaseSwapping    Phase = "swapping"     // enforce_internal_auth only: every node gets api_key = new, alt = old
	PhasePromoting   Phase = "promoting"    // every node gets api_key = new key, the old key dropped
	PhaseRetiring    Phase = "retiring"     // the old key is labelled retired in the store
	PhaseCutting     Phase = "cutting"      // emergency: every node gets the new key only, no overlap
	PhaseRollingBack Phase = "rolling_back" // touched nodes go back to the store's current key
	PhaseDone        Phase = "done"
	PhaseRolledBack  Phase = "rolled_back"
)

// Final says whether a phase ends a rotation.
func (p Phase) Final() bool { return p == "" || p == PhaseDone || p == PhaseRolledBack }

// Kind is why a rotation runs.
type Kind string

// Kinds of rotation.
const (
	KindScheduled Kind = "scheduled"
	KindEmergency Kind = "emergency"
)

// Journal is the rotator-only record of a deployment's rotation: the lease that keeps two rotators apart and the
// state of the rotation in progress (or the last one).
type Journal struct {
	// Lease.
	Owner      string
	LeaseUntil time.Time

	RotationID string
	Kind       Kind
	Phase      Phase
	// Node is the node being changed when the journal was written ("" between nodes).
	Node string
	// NodesDone are the nodes that completed the current phase.
	NodesDone []string
	// PendingKey is the new key, journaled before any node is given it.
	PendingKey Key
	// OldKey is the key current when the rotation started; BaseVersion its version in the store.
	OldKey      Key
	BaseVersion int
	// With Options.ReadOnly: the new and old read-only keys, the read-only record's version at the start, and the
	// read JWT (signed with the new admin key) that bridges read-only clients while nodes change read-only keys.
	PendingReadOnly, OldReadOnly Key
	ReadOnlyBase                 int
	Bridge                       Key
	PublishedAt                  time.Time
	StartedAt                    time.Time
	UpdatedAt                    time.Time
	// InternalAuth: the peers enforce internal auth, so the plan takes 3 restarts per node (swapping before
	// promoting). Chosen at the start from the deployment and every node's setting, and again at each resume.
	InternalAuth bool
	// OldFingerprint and PendingFingerprint name the old and the new key; they outlive the keys, which the journal
	// forgets when the rotation ends.
	OldFingerprint, PendingFingerprint string
	// Error is why the rotation failed or rolled back.
	Error string
	// OpID is unique per write, so a writer can recognise its own write after a lost answer.
	OpID string
}

// forgetKeys drops every key from a journal whose rotation has ended: the store's consumer records (labelled,
// retained) are then the only place a key of this rotation lives.
func (j *Journal) forgetKeys() {
	j.PendingKey, j.OldKey, j.PendingReadOnly, j.OldReadOnly, j.Bridge = Key{}, Key{}, Key{}, Key{}, Key{}
}

func (j Journal) done(node string) bool { return slices.Contains(j.NodesDone, node) }

func (j *Journal) markDone(node string) {
	if !j.done(node) {
		j.NodesDone = append(j.NodesDone, node)
	}
	j.Node = ""
}
