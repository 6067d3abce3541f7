package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
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

// Options configure a Rotator.
type Options struct {
	Deployment string
	// Grace is the wait between publishing the new key and dropping the old one.
	Grace time.Duration
	// ReadyTimeout bounds the wait for one node to come back and pass its checks.
	ReadyTimeout time.Duration
	// LeaseTTL is how long the lease holds without renewal (renewed every third of it).
	LeaseTTL time.Duration
	// ReadOnly rotates the read-only slot too, through a read-JWT bridge so read-only clients see no window; it
	// turns jwt_rbac on on every node. Without it the read-only slot is left as each node has it.
	ReadOnly bool
	// Keys are the named keys, re-minted and published in every rotation once the new admin key is current.
	Keys []NamedKey
	// Cluster treats the nodes as one Qdrant cluster: the preflight refuses an unsafe rolling restart, followers
	// restart before the leader, and each node must be back with every replica Active before the next.
	Cluster bool
	// InternalAuth says the peers run with enforce_internal_auth, authenticating each other with their primary
	// key: the plan takes 3 restarts per node (K1+alt K2, K2+alt K1, K2) instead of 2. A node whose own
	// configuration enforces it gets the same plan without this option.
	InternalAuth bool
	// AcceptDowntime lets a cluster with replication factor 1 rotate anyway.
	AcceptDowntime bool
	// Owner names this rotator in the lease (default: random).
	Owner        string
	Fingerprints Fingerprinter
	Logger       *slog.Logger
	// Observe receives progress events (optional).
	Observe func(Event)
	// Checkpoint is called at each phase boundary after the journal is written (optional; a test hook).
	Checkpoint func(point string)
	// Clock is the time source (default SystemClock).
	Clock Clock
}

var deploymentName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Rotator rotates the admin key of one deployment.
type Rotator struct {
	store Store
	nodes []Node
	opt   Options

	knownMu sync.Mutex
	known   []Key // every key probed so far, masked in what nodes say (diagnose)
}

// New checks the options and returns a Rotator.
func New(store Store, nodes []Node, opt Options) (*Rotator, error) {
	if !deploymentName.MatchString(opt.Deployment) {
		return nil, fmt.Errorf("deployment name %q: want 1-63 characters from [a-z0-9_-], starting with a letter or digit", opt.Deployment)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("deployment %s: no nodes", opt.Deployment)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if seen[n.Name()] {
			return nil, fmt.Errorf("deployment %s: node %s is listed twice", opt.Deployment, n.Name())
		}
		seen[n.Name()] = true
	}
	names := map[string]bool{}
	for _, k := range opt.Keys {
		if !deploymentName.MatchString(k.Name) || names[k.Name] {
			return nil, fmt.Errorf("deployment %s: named key %q is invalid or listed twice", opt.Deployment, k.Name)
		}
		if !k.Full && k.TTL <= 0 {
			return nil, fmt.Errorf("deployment %s: named key %s: its JWT needs a positive TTL", opt.Deployment, k.Name)
		}
		names[k.Name] = true
	}
	if opt.Grace < 0 {
		return nil, fmt.Errorf("deployment %s: grace %s is negative", opt.Deployment, opt.Grace)
	}
	if opt.ReadyTimeout <= 0 {
		opt.ReadyTimeout = 60 * time.Second
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = 60 * time.Second
	}
	if opt.Owner == "" {
		opt.Owner = "rotator-" + newID()
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Clock == nil {
		opt.Clock = SystemClock{}
	}
	if opt.Fingerprints.secret == nil {
		return nil, errors.New("rotator: no fingerprinter")
	}
	return &Rotator{store: store, nodes: nodes, opt: opt}, nil
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
	// The lease is renewed until Rotate returns, not until a stop is requested: a node step begun before a SIGTERM
	// finishes under the lease. Losing the lease cancels the rotation at once.
	renewCtx, stopRenewing := context.WithCancel(context.WithoutCancel(ctx))
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.keepRenewed(renewCtx, l, cancel) }()
	defer func() {
		stopRenewing()
		cancel(nil)
		wg.Wait()
		if errors.Is(err, ErrLeaseLost) {
			return // the lease is someone else's now
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer rcancel()
		if rerr := l.release(rctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()

	// Put straight what a crash may have left half-done on the nodes (a container swap), under the lease.
	for _, n := range r.nodes {
		if err := n.Recover(ctx); err != nil {
			return rep, err
		}
	}
	j := l.journal()
	r.remember(j.OldKey, j.PendingKey, j.OldReadOnly, j.PendingReadOnly, j.Bridge)
	if !j.Phase.Final() {
		rep.Resumed = true
		r.opt.Logger.Info("resuming an interrupted rotation", "deployment", r.opt.Deployment, "rotation_id", j.RotationID, "phase", string(j.Phase))
		if err := r.replan(ctx, l); err != nil {
			rep.Outcome, rep.Error, rep.Finished = OutcomeFailed, err.Error(), r.now()
			return rep, err
		}
		if req.Emergency && j.Kind != KindEmergency {
			if err := r.escalate(ctx, l, &rep); err != nil {
				rep.Outcome, rep.Error, rep.Finished = OutcomeFailed, err.Error(), r.now()
				return rep, err
			}
		}
	} else if err := r.begin(ctx, l, req, &rep); err != nil {
		rep.Outcome, rep.Error, rep.Finished = OutcomeFailed, err.Error(), r.now()
		return rep, err
	}
	err = r.drive(ctx, l, &rep)
	if err == nil && req.Emergency && l.journal().Kind != KindEmergency {
		// The interrupted rotation this run finished was rolled back, so the leaked key is still current: the
		// emergency itself starts now.
		if err = r.begin(ctx, l, req, &rep); err == nil {
			err = r.drive(ctx, l, &rep)
		}
	}
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrLeaseLost) {
		err = cause
	}
	j = l.journal()
	rep.RotationID, rep.Kind, rep.Phase = j.RotationID, j.Kind, j.Phase
	rep.OldFingerprint, rep.NewFingerprint = j.OldFingerprint, j.PendingFingerprint
	if rep.OldFingerprint == "" { // a journal written before fingerprints were journaled
		rep.OldFingerprint, rep.NewFingerprint = r.fp(j.OldKey), r.fp(j.PendingKey)
	}
	for _, n := range r.nodes {
		rep.Nodes = append(rep.Nodes, n.Name())
	}
	rep.Finished = r.now()
	switch {
	case err == nil && j.Phase == PhaseDone:
		rep.Outcome, rep.NewVersion = OutcomeCompleted, j.BaseVersion+1 // published with check-and-set on BaseVersion
	case j.Phase == PhaseRolledBack:
		rep.Outcome, rep.Error = OutcomeRolledBack, j.Error
		if err == nil {
			err = fmt.Errorf("deployment %s: %w: %s", r.opt.Deployment, ErrRolledBack, j.Error)
		}
	default:
		rep.Outcome = OutcomeFailed
		if err != nil {
			rep.Error = err.Error()
		}
	}
	return rep, err
}

// escalate turns the interrupted scheduled rotation in the journal into an emergency cut: every node gets the pending
// key alone at once, so the leaked current key is refused as fast as the nodes restart. A rotation rolling back
// finishes its rollback first (Rotate then starts the emergency); one retiring has already dropped the old key.
func (r *Rotator) escalate(ctx context.Context, l *lease, rep *Report) error {
	j := l.journal()
	if j.Phase == PhaseRollingBack {
		return nil
	}
	err := r.journal(ctx, l, func(j *Journal) {
		j.Kind = KindEmergency
		if j.Phase != PhaseRetiring {
			j.Phase, j.NodesDone, j.Node = PhaseCutting, nil, ""
		}
	})
	if err != nil {
		return err
	}
	rep.Escalated = true
	r.emitJ(l.journal(), Event{Step: "escalated", Fingerprint: r.fp(j.PendingKey), Message: fmt.Sprintf("emergency: the interrupted scheduled rotation (phase %s) becomes an emergency cut with no overlap", j.Phase)})
	r.checkpoint("escalated")
	return nil
}

// keepRenewed renews the lease every third of its TTL until ctx ends; losing the lease cancels ctx.
func (r *Rotator) keepRenewed(ctx context.Context, l *lease, cancel context.CancelCauseFunc) {
	t := time.NewTicker(r.opt.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.update(ctx, func(*Journal) {}); errors.Is(err, ErrLeaseLost) {
				r.opt.Logger.Error("lease lost; stopping", "deployment", r.opt.Deployment)
				cancel(ErrLeaseLost)
				return
			} else if err != nil && ctx.Err() == nil {
				r.opt.Logger.Warn("lease renewal failed; will retry", "deployment", r.opt.Deployment, "error", err)
			}
		}
	}
}

// begin runs the preflight, mints the new key and journals it before any node is touched.
func (r *Rotator) begin(ctx context.Context, l *lease, req Request, rep *Report) error {
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotAdmin)
	if errors.Is(err, ErrNotFound) {
		if !req.Adopt {
			return fmt.Errorf("deployment %s: %w; run with adopt to import the key the nodes use now", r.opt.Deployment, ErrNoKey)
		}
		cur, err = r.adopt(ctx)
		rep.Adopted = err == nil
	}
	if err != nil {
		return err
	}
	r.emit(Event{Step: "preflight", Fingerprint: r.fp(cur.Key), Message: fmt.Sprintf("checking %d nodes against the current key", len(r.nodes))})
	// Every node answers first (an open node is reported as such, with its likely cause), then every node's
	// configuration must be one the rotation can change.
	if err := r.checkAll(ctx, cur.Key); err != nil {
		return err
	}
	have, err := r.nodeSlots(ctx)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	if r.opt.Cluster {
		if err := r.clusterPreflight(ctx, cur.Key); err != nil {
			return err
		}
	}
	var ro KeyRecord
	var newRO Key
	if r.opt.ReadOnly {
		if ro, err = r.readOnlyCurrent(ctx); err != nil {
			return err
		}
		if !ro.Key.IsZero() {
			if err := r.checkAll(ctx, ro.Key); err != nil {
				return fmt.Errorf("read-only key: %w", err)
			}
		}
		if newRO, err = NewKey(); err != nil {
			return err
		}
	}
	newKey, err := NewKey()
	if err != nil {
		return err
	}
	kind, phase := KindScheduled, PhaseStaging
	if req.Emergency {
		kind, phase = KindEmergency, PhaseCutting
	}
	internalAuth := r.needsInternalAuth(have)
	now := r.now()
	err = r.journal(ctx, l, func(j *Journal) {
		*j = Journal{
			InternalAuth: internalAuth,
			RotationID:   now.UTC().Format("20060102T150405Z") + "-" + newID()[:6], Kind: kind, Phase: phase,
			PendingKey: newKey, OldKey: cur.Key, BaseVersion: cur.Version, StartedAt: now,
			PendingReadOnly: newRO, OldReadOnly: ro.Key, ReadOnlyBase: ro.Version,
			OldFingerprint: r.fp(cur.Key), PendingFingerprint: r.fp(newKey),
		}
	})
	if err != nil {
		return err
	}
	j := l.journal()
	r.emitJ(j, Event{Step: "minted", Fingerprint: r.fp(newKey), Message: "new key minted and journaled"})
	r.checkpoint("minted")
	return nil
}

// adopt imports the key every node is configured with into the store (version 1), after checking that every node
// has the same key and accepts it.
func (r *Rotator) adopt(ctx context.Context) (KeyRecord, error) {
	var key Key
	for _, n := range r.nodes {
		s, err := n.Keys(ctx)
		if err != nil {
			return KeyRecord{}, fmt.Errorf("adopt: %w", err)
		}
		switch {
		case s.APIKey.IsZero():
			return KeyRecord{}, fmt.Errorf("adopt: node %s has no api_key", n.Name())
		case key.IsZero():
			key = s.APIKey
		case !key.Equal(s.APIKey):
			return KeyRecord{}, fmt.Errorf("adopt: node %s has api_key %s, another node %s; adopt needs one key on every node", n.Name(), r.fp(s.APIKey), r.fp(key))
		}
	}
	if err := r.checkAll(ctx, key); err != nil {
		return KeyRecord{}, fmt.Errorf("adopt: %w", err)
	}
	rec := KeyRecord{Key: key, Fingerprint: r.fp(key), Since: r.now(), RotationID: "adopted"}
	v, err := r.store.Publish(ctx, r.opt.Deployment, SlotAdmin, rec, 0)
	if err != nil {
		return KeyRecord{}, fmt.Errorf("adopt: %w", err)
	}
	rec.Version = v
	r.emit(Event{Step: "adopted", Fingerprint: rec.Fingerprint, Message: "imported the nodes' key into the store"})
	return rec, nil
}

// readOnlyCurrent returns the read-only record. When the store has none yet, it imports the read-only key every node
// has (publishing it), or returns a zero record when no node has one.
func (r *Rotator) readOnlyCurrent(ctx context.Context) (KeyRecord, error) {
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotReadOnly)
	if !errors.Is(err, ErrNotFound) {
		return cur, err
	}
	var key Key
	for i, n := range r.nodes {
		s, err := n.Keys(ctx)
		if err != nil {
			return KeyRecord{}, err
		}
		if i > 0 && !key.Equal(s.ReadOnlyKey) {
			return KeyRecord{}, fmt.Errorf("read-only key: the nodes do not agree on one (node %s has %s, another %s)", n.Name(), r.fp(s.ReadOnlyKey), r.fp(key))
		}
		key = s.ReadOnlyKey
	}
	if key.IsZero() {
		return KeyRecord{}, nil
	}
	rec := KeyRecord{Key: key, Kind: CredentialKey, Fingerprint: r.fp(key), Since: r.now(), RotationID: "adopted"}
	if rec.Version, err = r.store.Publish(ctx, r.opt.Deployment, SlotReadOnly, rec, 0); err != nil {
		return KeyRecord{}, fmt.Errorf("read-only key: %w", err)
	}
	r.emit(Event{Step: "adopted", Fingerprint: rec.Fingerprint, Message: "imported the nodes' read-only key into the store"})
	return rec, nil
}

// DriftError lists the nodes that do not accept the store's current key.
type DriftError struct {
	Deployment string
	Nodes      map[string]string // node -> what went wrong
	Open       []string          // the nodes that are open (accept a key never issued)
}

func (e *DriftError) Error() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(e.Nodes)) {
		reason := e.Nodes[name]
		node, _, _ := strings.Cut(name, " ")
		reason = strings.TrimPrefix(reason, "node "+node+": ")
		reason = strings.ReplaceAll(reason, ": node "+node+": ", ": ")
		parts = append(parts, name+": "+reason)
	}
	return fmt.Sprintf("deployment %s: %v: %s", e.Deployment, ErrDrift, strings.Join(parts, "; "))
}

// Is makes errors.Is(err, ErrDrift) hold, and errors.Is(err, ErrOpen) when a node is open.
func (e *DriftError) Is(target error) bool {
	return target == ErrDrift || (target == ErrOpen && len(e.Open) > 0)
}

// checkAll proves that every node accepts key, waiting for nodes that are still starting.
func (r *Rotator) checkAll(ctx context.Context, key Key) error {
	drift := map[string]string{}
	var open []string
	for _, n := range r.nodes {
		err := r.waitAccepts(ctx, n, key)
		if err == nil {
			err = r.refusesStrangers(ctx, n)
		}
		if err != nil {
			drift[n.Name()] = r.downError(ctx, n, err).Error()
		}
		if errors.Is(err, ErrOpen) {
			open = append(open, n.Name())
		}
	}
	if len(drift) > 0 {
		return &DriftError{Deployment: r.opt.Deployment, Nodes: drift, Open: open}
	}
	return nil
}

// drive runs the journal's phases to a final one.
func (r *Rotator) drive(ctx context.Context, l *lease, rep *Report) error {
	for {
		j := l.journal()
		var err error
		switch j.Phase {
		case PhaseDone, PhaseRolledBack:
			return nil
		case PhaseStaging:
			err = r.eachNode(ctx, l, rep, r.staged(j, "stage"), PhasePublishing)
		case PhaseCutting:
			err = r.cut(ctx, l, rep)
		case PhasePublishing:
			err = r.publish(ctx, l)
		case PhaseGrace:
			err = r.grace(ctx, l)
		case PhaseSwapping:
			err = r.eachNode(ctx, l, rep, r.swapped(j), PhasePromoting)
			if err != nil && !stopped(ctx, err) {
				err = r.unpromote(ctx, l, rep, err)
			}
		case PhasePromoting:
			err = r.eachNode(ctx, l, rep, r.promoted(j), PhaseRetiring)
			if err != nil && !stopped(ctx, err) {
				err = r.unpromote(ctx, l, rep, err)
			}
		case PhaseRetiring:
			err = r.retire(ctx, l)
		case PhaseRollingBack:
			err = r.rollback(ctx, l, rep)
		default:
			return fmt.Errorf("journal of %s: unknown phase %q", r.opt.Deployment, j.Phase)
		}
		if err == nil {
			continue
		}
		// A node found open or refusing before the new key was published counts as a staging failure.
		nodeBeforePublish := j.Phase == PhasePublishing && errors.Is(err, ErrDrift)
		if stopped(ctx, err) || (j.Phase != PhaseStaging && j.Phase != PhaseCutting && !nodeBeforePublish) {
			return err
		}
		// A node failed while the store's current key is still the old one: roll every node back to it.
		r.opt.Logger.Error("rotation failed; rolling back", "deployment", r.opt.Deployment, "phase", string(j.Phase), "error", err)
		if jerr := r.journal(ctx, l, func(j *Journal) { j.Phase, j.Error, j.NodesDone = PhaseRollingBack, err.Error(), nil }); jerr != nil {
			return errors.Join(err, jerr)
		}
	}
}

// stopped says whether err means "stop now and leave the journal for the next run" rather than "roll back".
func stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, ErrLeaseLost) || errors.Is(err, context.Canceled)
}

// target is what one step gives a node: its slots, derived from what the node has, and the credentials it must
// then accept and refuse (401/403).
type target struct {
	step   string
	edit   func(Slots) Slots
	accept []Key
	refuse []Key
	// allAtOnce: every node moves at the same time (the emergency cut), so no peer waits for the others.
	allAtOnce bool
}

// keys drops unset keys (a deployment may have no read-only key).
func keys(ks ...Key) []Key {
	out := ks[:0:0]
	for _, k := range ks {
		if !k.IsZero() {
			out = append(out, k)
		}
	}
	return out
}

// staged: the old key primary, the new one in the alt slot; with ReadOnly, jwt_rbac on (for the bridge).
func (r *Rotator) staged(j Journal, step string) target {
	return target{step: step, edit: func(s Slots) Slots {
		s.APIKey, s.AltAPIKey = j.OldKey, j.PendingKey
		if r.opt.ReadOnly {
			s.ReadOnlyKey = j.OldReadOnly
		}
		s.JWTRBAC = s.JWTRBAC || r.usesJWT()
		return s
	}, accept: keys(j.OldKey, j.PendingKey, j.OldReadOnly)}
}

// promoted: the new key alone; with ReadOnly, the new read-only key, and the bridge still accepted.
func (r *Rotator) promoted(j Journal) target {
	t := target{step: "promote", edit: func(s Slots) Slots {
		s.APIKey, s.AltAPIKey = j.PendingKey, Key{}
		if r.opt.ReadOnly {
			s.ReadOnlyKey = j.PendingReadOnly
		}
		s.JWTRBAC = s.JWTRBAC || r.usesJWT()
		return s
	}, accept: []Key{j.PendingKey}, refuse: []Key{j.OldKey}}
	if r.opt.ReadOnly {
		t.accept = keys(j.PendingKey, j.PendingReadOnly, j.Bridge)
		t.refuse = keys(j.OldKey, j.OldReadOnly)
	}
	return t
}

// cutTarget: the emergency step, the new keys alone at once.
func (r *Rotator) cutTarget(j Journal) target {
	return target{step: "cut", edit: func(s Slots) Slots {
		s.APIKey, s.AltAPIKey = j.PendingKey, Key{}
		if r.opt.ReadOnly {
			s.ReadOnlyKey = j.PendingReadOnly
		}
		s.JWTRBAC = s.JWTRBAC || r.usesJWT()
		return s
	}, accept: keys(j.PendingKey, j.PendingReadOnly), refuse: keys(j.OldKey, j.OldReadOnly), allAtOnce: true}
}

// swapped: with enforce_internal_auth, the new key primary (what peers now send each other) and the old one in the
// alt slot (what peers not yet swapped still send), so peer traffic never breaks.
func (r *Rotator) swapped(j Journal) target {
	t := r.staged(j, "swap")
	edit := t.edit
	t.edit = func(s Slots) Slots { s = edit(s); s.APIKey, s.AltAPIKey = j.PendingKey, j.OldKey; return s }
	return t
}

// eachNode moves the nodes one at a time to t, checking each before the next. Then the journal moves to next.
func (r *Rotator) eachNode(ctx context.Context, l *lease, rep *Report, t target, next Phase) error {
	step := t.step
	for {
		var remaining []Node
		for _, n := range r.nodes {
			if !l.journal().done(n.Name()) {
				remaining = append(remaining, n)
			}
		}
		if len(remaining) == 0 {
			break
		}
		order, leader := r.orderNodes(ctx, remaining, t.accept[0])
		n := order[0]
		if n.Name() == leader {
			r.emitJ(l.journal(), Event{Step: step, Node: n.Name(), Message: "the cluster's leader, restarted after its followers"})
		}
		// A stop request (SIGTERM) is honoured here, between nodes: a node step once begun is finished, so no
		// node is left half-changed.
		if err := context.Cause(ctx); err != nil {
			return err
		}
		if err := r.journal(ctx, l, func(j *Journal) { j.Node = n.Name() }); err != nil {
			return err
		}
		r.checkpoint(step + ":" + n.Name() + ":begin")
		stepCtx := context.WithoutCancel(ctx)
		if err := r.moveNode(stepCtx, l, l.journal(), n, t, rep); err != nil {
			return fmt.Errorf("%s node %s: %w", step, n.Name(), err)
		}
		if r.opt.Cluster {
			if err := r.waitSettled(stepCtx, "after node "+n.Name()+" restarted", t.accept[0], r.nodes...); err != nil {
				return fmt.Errorf("%s node %s: %w", step, n.Name(), err)
			}
		}
		if err := r.journal(stepCtx, l, func(j *Journal) { j.markDone(n.Name()) }); err != nil {
			return err
		}
		r.checkpoint(step + ":" + n.Name() + ":done")
	}
	if err := r.journal(ctx, l, func(j *Journal) { j.Phase, j.NodesDone, j.Node = next, nil, "" }); err != nil {
		return err
	}
	r.checkpoint(step + "d")
	return nil
}

// moveNode gives one node the slots of t unless it already has them and answers as wanted, restarts it, and checks
// it.
func (r *Rotator) moveNode(ctx context.Context, l *lease, j Journal, n Node, t target, rep *Report) error {
	step, accept, refuse := t.step, t.accept, t.refuse
	have, err := n.Keys(ctx)
	if err != nil {
		return err
	}
	want := t.edit(have)
	answered := r.answers(ctx, n, accept, refuse)
	if have.Equal(want) && answered == nil {
		if err := r.refusesStrangers(ctx, n); err != nil {
			return err // a restart with the same configuration would not close it
		}
		r.emitJ(j, Event{Step: step, Node: n.Name(), Message: "already done"})
		return nil
	}
	if errors.Is(answered, ErrNodeDown) {
		r.emitJ(j, Event{Step: step, Node: n.Name(), Message: "the node was found stopped; the rotator starts it"})
		rep.StartedNodes = append(rep.StartedNodes, n.Name())
	}
	if r.opt.Cluster && !t.allAtOnce && !errors.Is(answered, ErrNodeDown) {
		if err := r.othersSettled(ctx, n, t.accept[0]); err != nil {
			return err
		}
	}
	if err := r.fence(ctx, l); err != nil {
		return err
	}
	r.emitJ(j, Event{Step: step, Node: n.Name(), Message: "restarting: " + n.Method()})
	if err := n.Apply(ctx, want); err != nil {
		return err
	}
	rep.Restarts++
	for _, k := range accept {
		if err := r.waitAccepts(ctx, n, k); err != nil {
			return r.downError(ctx, n, err)
		}
	}
	if err := r.refusesStrangers(ctx, n); err != nil {
		return err // before the refuse checks: an open node accepts the old key too, and that is not why
	}
	if err := r.answers(ctx, n, nil, refuse); err != nil {
		return err
	}
	r.emitJ(j, Event{Step: step, Node: n.Name(), Message: "checked: " + r.describe(accept, refuse)})
	return nil
}

// fence proves, immediately before a node is changed, that this rotator still holds the lease: a check-and-set
// write of the journal, which fails once another rotator has taken the lease (a rotator frozen past the TTL, then
// resumed, stops here instead of applying stale slots). The write must also have taken less than half the TTL on
// this process's monotonic clock, so the lease it renewed is still fresh whatever the wall clocks of the rotators
// say; a slow write is repeated.
func (r *Rotator) fence(ctx context.Context, l *lease) error {
	for {
		sent := time.Now() // elapsed time on the monotonic clock, not the deployment's Clock: a freeze counts
		if err := r.journal(ctx, l, func(*Journal) {}); err != nil {
			return err
		}
		if time.Since(sent) < r.opt.LeaseTTL/2 {
			r.checkpoint("fenced")
			return nil
		}
		r.opt.Logger.Warn("renewing the lease took over half its TTL; renewing again before changing a node", "deployment", r.opt.Deployment)
	}
}

// answers checks once that n accepts every accept key and refuses every refuse key.
func (r *Rotator) answers(ctx context.Context, n Node, accept, refuse []Key) error {
	r.remember(accept...)
	r.remember(refuse...)
	for _, k := range accept {
		if err := n.Probe(ctx, k); err != nil {
			return fmt.Errorf("key %s: %w", r.fp(k), err)
		}
	}
	for _, k := range refuse {
		err := n.Probe(ctx, k)
		if err == nil {
			return fmt.Errorf("key %s is still accepted", r.fp(k))
		}
		if !errors.Is(err, ErrRejected) {
			return fmt.Errorf("key %s: %w", r.fp(k), err)
		}
	}
	return nil
}

// waitAccepts waits (up to ReadyTimeout) until n accepts key; a rejection or a stopped node ends the wait at once.
func (r *Rotator) waitAccepts(ctx context.Context, n Node, key Key) error {
	r.remember(key)
	return Retry(ctx, r.opt.ReadyTimeout, func() error {
		err := n.Probe(ctx, key)
		if errors.Is(err, ErrRejected) || errors.Is(err, ErrNodeDown) {
			return Permanent(fmt.Errorf("key %s: %w", r.fp(key), err))
		}
		if err != nil {
			return fmt.Errorf("key %s: %w", r.fp(key), err)
		}
		return nil
	})
}

// cut is the emergency step: every node at once gets the new key alone, so the old one is refused as fast as the
// nodes restart.
func (r *Rotator) cut(ctx context.Context, l *lease, rep *Report) error {
	j := l.journal()
	t := r.cutTarget(j)
	errs := make([]error, len(r.nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local Report
			if err := r.moveNode(context.WithoutCancel(ctx), l, j, n, t, &local); err != nil {
				errs[i] = fmt.Errorf("cut node %s: %w", n.Name(), err)
			}
			mu.Lock()
			rep.Restarts += local.Restarts
			rep.StartedNodes = append(rep.StartedNodes, local.StartedNodes...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := r.journal(ctx, l, func(j *Journal) { j.Phase = PhasePublishing }); err != nil {
		return err
	}
	r.checkpoint("cut")
	return nil
}

// publish makes the new key current for consumers (a new version; the old one stays readable as the previous).
func (r *Rotator) publish(ctx context.Context, l *lease) error {
	j := l.journal()
	// Published only once every node accepts it and none is open.
	if err := r.checkAll(ctx, j.PendingKey); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	rec := KeyRecord{Key: j.PendingKey, Fingerprint: r.fp(j.PendingKey), Since: r.now(), RotationID: j.RotationID}
	_, err := r.store.Publish(ctx, r.opt.Deployment, SlotAdmin, rec, j.BaseVersion)
	if errors.Is(err, ErrConflict) {
		// Published already (a run that crashed after publishing, or a lost answer), or changed by someone else.
		cur, rerr := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotAdmin)
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		if cur.RotationID != j.RotationID {
			return fmt.Errorf("publish: the consumer record moved to version %d (rotation %s) during this rotation", cur.Version, cur.RotationID)
		}
		err = nil
	}
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	r.emitJ(j, Event{Step: "published", Fingerprint: rec.Fingerprint, Message: "new key is current for consumers"})
	next := PhaseGrace
	if j.Kind == KindEmergency {
		next = PhaseRetiring
	} else if r.opt.ReadOnly {
		if err := r.publishBridge(ctx, l); err != nil {
			return err
		}
	}
	if len(r.opt.Keys) > 0 {
		n, err := r.RemintKeys(ctx, j.PendingKey, j.RotationID)
		if err != nil {
			return fmt.Errorf("publish named keys: %w", err)
		}
		r.emitJ(j, Event{Step: "published", Message: fmt.Sprintf("%d named keys minted for the new key and published (%d of %d this run)", len(r.opt.Keys), n, len(r.opt.Keys))})
		r.checkpoint("keys published")
	}
	if err := r.journal(ctx, l, func(j *Journal) { j.Phase, j.PublishedAt = next, r.now() }); err != nil {
		return err
	}
	r.checkpoint("published")
	return nil
}

// bridgeLifetime is how long the read JWT that bridges read-only clients stays valid: long enough for any grace and
// for an operator to finish an interrupted rotation, short enough that a copy kept by mistake dies on its own.
const bridgeLifetime = 7 * 24 * time.Hour

// publishBridge gives read-only consumers a read JWT signed with the new admin key (which every node accepts in one
// of its slots now), journaled before it is published and checked on every node first. Nodes may then change their
// read-only key without any read-only client being refused.
func (r *Rotator) publishBridge(ctx context.Context, l *lease) error {
	j := l.journal()
	if j.Bridge.IsZero() {
		bridge, err := signToken(j.PendingKey, "r", r.now().Add(max(bridgeLifetime, 10*r.opt.Grace)))
		if err != nil {
			return err
		}
		if err := r.journal(ctx, l, func(j *Journal) { j.Bridge = bridge }); err != nil {
			return err
		}
		j = l.journal()
	}
	if err := r.checkAll(ctx, j.Bridge); err != nil {
		return fmt.Errorf("read JWT: %w", err)
	}
	rec := KeyRecord{Key: j.Bridge, Kind: CredentialJWT, Fingerprint: r.fp(j.Bridge), Since: r.now(), RotationID: j.RotationID}
	if _, err := r.publishOnce(ctx, SlotReadOnly, rec, j.ReadOnlyBase); err != nil {
		return fmt.Errorf("publish read JWT: %w", err)
	}
	r.emitJ(j, Event{Step: "published", Fingerprint: rec.Fingerprint, Message: "read JWT is the read-only credential while nodes change read-only keys"})
	r.checkpoint("bridged")
	return nil
}

// publishOnce publishes rec unless this rotation already published a credential of the same kind there (a rerun
// after a crash, or a lost answer). It says whether it wrote.
func (r *Rotator) publishOnce(ctx context.Context, slot Slot, rec KeyRecord, cas int) (bool, error) {
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment, slot)
	switch {
	case err == nil && cur.RotationID == rec.RotationID && cur.Kind == rec.Kind:
		return false, nil
	case err == nil:
		cas = cur.Version
	case !errors.Is(err, ErrNotFound):
		return false, err
	}
	_, err = r.store.Publish(ctx, r.opt.Deployment, slot, rec, cas)
	return err == nil, err
}

// grace waits until consumers have had Grace to move to the new key (counted from publication, across restarts).
func (r *Rotator) grace(ctx context.Context, l *lease) error {
	j := l.journal()
	wait := j.PublishedAt.Add(r.opt.Grace).Sub(r.now())
	if wait > 0 {
		r.emitJ(j, Event{Step: "grace", Message: fmt.Sprintf("waiting %s for consumers to move to the new key", wait.Round(time.Millisecond))})
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-r.opt.Clock.After(wait):
		}
	}
	next := PhasePromoting
	if j.InternalAuth {
		next = PhaseSwapping
	}
	if err := r.journal(ctx, l, func(j *Journal) { j.Phase, j.NodesDone = next, nil }); err != nil {
		return err
	}
	r.checkpoint("grace")
	return nil
}

// unpromote handles a node that failed its promotion: the store's current key is already the new one, so the node
// goes back to the staged slots (new key primary, old key alternate), which accept it; the journal stays resumable.
func (r *Rotator) unpromote(ctx context.Context, l *lease, rep *Report, cause error) error {
	j := l.journal()
	r.opt.Logger.Error("promotion failed; restoring the staged slots on the node", "deployment", r.opt.Deployment, "node", j.Node, "error", cause)
	for _, n := range r.nodes {
		if n.Name() != j.Node {
			continue
		}
		restore := r.staged(j, "restore")
		edit := restore.edit
		restore.edit = func(s Slots) Slots {
			if holds := keys(s.APIKey, s.AltAPIKey); len(holds) == 2 && slices.ContainsFunc(holds, j.PendingKey.Equal) && slices.ContainsFunc(holds, j.OldKey.Equal) {
				return s // never promoted (it still holds both keys): nothing to restore
			}
			s = edit(s)
			s.APIKey, s.AltAPIKey = j.PendingKey, j.OldKey
			return s
		}
		restore.accept = keys(j.PendingKey, j.OldKey, j.OldReadOnly, j.Bridge)
		if err := r.moveNode(ctx, l, j, n, restore, rep); err != nil {
			return errors.Join(cause, fmt.Errorf("restore node %s: %w", n.Name(), err))
		}
	}
	if err := r.journal(ctx, l, func(j *Journal) { j.Node, j.Error = "", cause.Error() }); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// retire labels the old key retired in the store and ends the rotation.
func (r *Rotator) retire(ctx context.Context, l *lease) error {
	j := l.journal()
	if r.opt.ReadOnly && !j.PendingReadOnly.IsZero() {
		rec := KeyRecord{Key: j.PendingReadOnly, Kind: CredentialKey, Fingerprint: r.fp(j.PendingReadOnly), Since: r.now(), RotationID: j.RotationID}
		if _, err := r.publishOnce(ctx, SlotReadOnly, rec, j.ReadOnlyBase); err != nil {
			return fmt.Errorf("publish read-only key: %w", err)
		}
		r.emitJ(j, Event{Step: "published", Fingerprint: rec.Fingerprint, Message: "new read-only key is current for read-only consumers"})
		r.checkpoint("read-only published")
		if j.ReadOnlyBase > 0 {
			if err := r.store.Retire(ctx, r.opt.Deployment, SlotReadOnly, j.ReadOnlyBase, r.now()); err != nil {
				return fmt.Errorf("retire: %w", err)
			}
		}
	}
	if j.BaseVersion > 0 {
		if err := r.store.Retire(ctx, r.opt.Deployment, SlotAdmin, j.BaseVersion, r.now()); err != nil {
			return fmt.Errorf("retire: %w", err)
		}
	}
	// A full-access named key's record held the old admin key in its previous version: retired (and soft-deleted
	// after the retention) like the admin record's.
	for _, k := range r.opt.Keys {
		if !k.Full {
			continue
		}
		rec, err := r.store.ReadCurrent(ctx, r.opt.Deployment, k.Slot())
		if err != nil {
			return fmt.Errorf("retire named key %s: %w", k.Name, err)
		}
		if rec.RotationID == j.RotationID && rec.Version > 1 {
			if err := r.store.Retire(ctx, r.opt.Deployment, k.Slot(), rec.Version-1, r.now()); err != nil {
				return fmt.Errorf("retire named key %s: %w", k.Name, err)
			}
		}
	}
	if err := r.journal(ctx, l, func(j *Journal) { j.Phase, j.Node, j.Error = PhaseDone, "", ""; j.forgetKeys() }); err != nil {
		return err
	}
	r.emitJ(j, Event{Step: "retired", Fingerprint: r.fp(j.OldKey), Message: "old key refused by every node and retired"})
	r.checkpoint("retired")
	return nil
}

// rollback puts every node back on the store's current key (the old one) alone and ends the rotation rolled back.
func (r *Rotator) rollback(ctx context.Context, l *lease, rep *Report) error {
	j := l.journal()
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotAdmin)
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if cur.RotationID == j.RotationID {
		return fmt.Errorf("rollback: the new key is already published (version %d); rerun to finish the rotation", cur.Version)
	}
	r.emitJ(j, Event{Step: "rollback", Fingerprint: r.fp(cur.Key), Message: "putting every node back on the current key: " + j.Error})
	r.checkpoint("rolling back")
	back := target{step: "rollback", edit: func(s Slots) Slots {
		s.APIKey, s.AltAPIKey = cur.Key, Key{}
		if r.opt.ReadOnly {
			s.ReadOnlyKey = j.OldReadOnly
		}
		return s
	}, accept: keys(cur.Key, j.OldReadOnly), refuse: keys(j.PendingKey)}
	stepCtx := context.WithoutCancel(ctx) // a rollback once begun is finished, whatever a stop request says
	order := r.nodes
	if r.opt.Cluster {
		order = r.downFirst(stepCtx, cur.Key)
	}
	for _, n := range order {
		before := rep.Restarts
		if err := r.fence(stepCtx, l); err != nil { // between nodes: a rollback by a rotator that lost its lease stops
			return fmt.Errorf("rollback: %w", err)
		}
		if err := r.moveNode(stepCtx, l, j, n, back, rep); err != nil {
			return fmt.Errorf("rollback node %s: %w", n.Name(), err)
		}
		if r.opt.Cluster && rep.Restarts > before {
			// Wait for the restarted node itself before the next goes down (other nodes may still be down).
			if err := r.waitSettled(stepCtx, "after node "+n.Name()+" rolled back", cur.Key, n); err != nil {
				return fmt.Errorf("rollback: %w", err)
			}
		}
	}
	if r.opt.Cluster {
		// Every node is back on the current key; the whole cluster must settle before the run ends.
		if err := r.waitSettled(stepCtx, "after the rollback", cur.Key, r.nodes...); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
	}
	if err := r.journal(ctx, l, func(j *Journal) { j.Phase, j.Node, j.NodesDone = PhaseRolledBack, "", nil; j.forgetKeys() }); err != nil {
		return err
	}
	r.checkpoint("rolled_back")
	return nil
}

// journal writes a journal change, retrying transient store errors. Every attempt carries the same write id, so an
// attempt that Vault applied but whose answer was lost is recognised by the next one instead of looking like a
// lost lease.
func (r *Rotator) journal(ctx context.Context, l *lease, change func(*Journal)) error {
	opID := newID()
	return Retry(ctx, r.opt.ReadyTimeout, func() error {
		err := l.write(ctx, change, true, opID)
		if errors.Is(err, ErrLeaseLost) {
			return Permanent(err)
		}
		return err
	})
}

func (r *Rotator) now() time.Time { return r.opt.Clock.Now() }

func (r *Rotator) fp(k Key) string { return r.opt.Fingerprints.Of(k) }

// describe says which keys a check accepted and refused, by fingerprint.
func (r *Rotator) describe(accept, refuse []Key) string {
	s := ""
	for _, k := range accept {
		s += r.fp(k) + " accepted, "
	}
	for _, k := range refuse {
		s += r.fp(k) + " refused, "
	}
	return strings.TrimSuffix(s, ", ")
}

func (r *Rotator) checkpoint(point string) {
	if r.opt.Checkpoint != nil {
		r.opt.Checkpoint(point)
	}
}
