package rotation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors a rotation ends with; callers branch on them with errors.Is.
var (
	// ErrDrift: a node does not accept the store's current key, so rotating could lock clients out.
	ErrDrift = errors.New("drift: not every node accepts the current key")
	// ErrNoKey: the store holds no key for the deployment (run with Adopt to import the nodes' key).
	ErrNoKey = errors.New("no key in the store")
	// ErrRolledBack: the rotation failed and every node is back on the store's current key.
	ErrRolledBack = errors.New("rotation rolled back")
)

// Rotator rotates the admin key of one deployment.
type Rotator struct {
	store Store
	nodes []Node
	opt   Options

	knownMu sync.Mutex
	known   []Key // every key probed so far, masked in what nodes say (diagnose)
}

// Request asks for one rotation.
type Request struct {
	Emergency bool
	// Adopt imports the nodes' key into the store when the store has none.
	Adopt bool
}

// Outcome is how a rotation ended.
type Outcome string

// Outcomes.
const (
	OutcomeCompleted  Outcome = "completed"
	OutcomeRolledBack Outcome = "rolled_back"
	OutcomeFailed     Outcome = "failed"
)

// Report sums up a rotation. It holds fingerprints, never keys.
type Report struct {
	Deployment string  `json:"deployment"`
	RotationID string  `json:"rotation_id"`
	Kind       Kind    `json:"kind"`
	Outcome    Outcome `json:"outcome"`
	Resumed    bool    `json:"resumed"`
	Adopted    bool    `json:"adopted,omitempty"`
	// Escalated says an emergency request turned an interrupted scheduled rotation into an emergency cut.
	Escalated      bool     `json:"escalated,omitempty"`
	Phase          Phase    `json:"phase"`
	OldFingerprint string   `json:"old_fingerprint"`
	NewFingerprint string   `json:"new_fingerprint"`
	Nodes          []string `json:"nodes"`
	Restarts       int      `json:"restarts"`
	// Started lists the nodes the rotator found stopped and started.
	StartedNodes []string `json:"started_stopped_nodes,omitempty"`
	// NewVersion is the consumer record's version that holds the new key (once published).
	NewVersion int       `json:"new_version,omitempty"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Error      string    `json:"error,omitempty"`
}

// Rotate runs one rotation of the deployment's admin key, or first finishes (or rolls back) one that an earlier run
// left in the journal. It holds the deployment's lease throughout.
func (r *Rotator) Rotate(ctx context.Context, req Request) (rep Report, err error) {
	rep = Report{Deployment: r.opt.Deployment, Started: r.now()}
	l, err := acquire(ctx, r.store, r.opt.Deployment, r.opt.Owner, r.opt.LeaseTTL, r.opt.Clock.Now)
	if err != nil {
		return rep, err
	}
	ctx, release := r.keepRenewed(ctx, l)
	defer func() { err = release(err) }()
	h := &holder{Rotator: r, lease: l, rep: &rep, emergency: req.Emergency}

	// Put straight what a crash may have left half-done on the nodes (a container swap), under the lease.
	for _, n := range r.nodes {
		if err := n.Recover(ctx); err != nil {
			return rep, err
		}
	}
	if err := h.resumeOrBegin(ctx, req); err != nil {
		rep.Outcome, rep.Error, rep.Finished = OutcomeFailed, err.Error(), r.now()
		return rep, err
	}
	err = h.drive(ctx)
	if err == nil && req.Emergency && l.journal().Kind != KindEmergency {
		// The interrupted rotation this run finished was rolled back, so the leaked key is still current: the
		// emergency itself starts now.
		if err = h.begin(ctx, req); err == nil {
			err = h.drive(ctx)
		}
	}
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrLeaseLost) {
		err = cause
	}
	err = h.conclude(err)
	return rep, err
}

// holder is one Rotate call holding the deployment's lease. The steps of a rotation are its methods: each writes
// the journal through the lease (writeJournal) and counts what it did in the run's report.
type holder struct {
	*Rotator
	lease *lease
	rep   *Report
	// emergency: the run was asked for an emergency (it may follow a rollback with one).
	emergency bool
	// othersSettledNow: every peer passed the settle check a moment ago (after the previous node of eachNode), so
	// the node step need not wait for the others again before its restart.
	othersSettledNow bool
}

// resumeOrBegin takes up the rotation an earlier run left unfinished in the journal (planned again for what the
// nodes need now, and escalated when an emergency is asked for), or begins a new one.
func (h *holder) resumeOrBegin(ctx context.Context, req Request) error {
	j := h.lease.journal()
	h.remember(j.OldKey, j.PendingKey, j.OldReadOnly, j.PendingReadOnly, j.Bridge)
	if j.Phase.Final() {
		return h.begin(ctx, req)
	}
	h.rep.Resumed = true
	h.opt.Logger.Info("resuming an interrupted rotation", "deployment", h.opt.Deployment, "rotation_id", j.RotationID, "phase", string(j.Phase))
	if err := h.replan(ctx); err != nil {
		return err
	}
	if req.Emergency && j.Kind != KindEmergency {
		return h.escalate(ctx)
	}
	return nil
}

// conclude fills the report from the journal as the run leaves it, and returns the run's error: ErrRolledBack when
// the rotation ended rolled back.
func (h *holder) conclude(err error) error {
	j, rep := h.lease.journal(), h.rep
	rep.RotationID, rep.Kind, rep.Phase = j.RotationID, j.Kind, j.Phase
	rep.OldFingerprint, rep.NewFingerprint = j.OldFingerprint, j.PendingFingerprint
	if rep.OldFingerprint == "" { // a journal written before fingerprints were journaled
		rep.OldFingerprint, rep.NewFingerprint = h.fp(j.OldKey), h.fp(j.PendingKey)
	}
	for _, n := range h.nodes {
		rep.Nodes = append(rep.Nodes, n.Name())
	}
	rep.Finished = h.now()
	switch {
	case err == nil && j.Phase == PhaseDone:
		rep.Outcome, rep.NewVersion = OutcomeCompleted, j.BaseVersion+1 // published with check-and-set on BaseVersion
	case j.Phase == PhaseRolledBack:
		rep.Outcome, rep.Error = OutcomeRolledBack, j.Error
		if err == nil {
			err = fmt.Errorf("deployment %s: %w: %s", h.opt.Deployment, ErrRolledBack, j.Error)
		}
	default:
		rep.Outcome = OutcomeFailed
		if err != nil {
			rep.Error = err.Error()
		}
	}
	return err
}

func (r *Rotator) now() time.Time { return r.opt.Clock.Now() }

func (r *Rotator) fp(k Key) string { return r.opt.Fingerprints.Of(k) }

func (r *Rotator) checkpoint(point string) {
	if r.opt.Checkpoint != nil {
		r.opt.Checkpoint(point)
	}
}
