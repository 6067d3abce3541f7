package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SlotView shows a node's slots by fingerprint ("" = unset, "<new>" and "<new read-only>" = keys a rotation would
// mint).
type SlotView struct {
	APIKey      string `json:"api_key"`
	AltAPIKey   string `json:"alt_api_key"`
	ReadOnlyKey string `json:"read_only_api_key"`
	JWTRBAC     bool   `json:"jwt_rbac"`
}

// PlanStep is one restart of a plan.
type PlanStep struct {
	Phase  Phase    `json:"phase"`
	Node   string   `json:"node"`
	Method string   `json:"method"`
	Before SlotView `json:"before"`
	After  SlotView `json:"after"`
	Checks string   `json:"checks"`
}

// Plan is what a rotation would do; making it changes nothing.
type Plan struct {
	Deployment string        `json:"deployment"`
	Kind       Kind          `json:"kind"`
	Resume     string        `json:"resume,omitempty"` // the phase an interrupted rotation would resume from
	Current    string        `json:"current_fingerprint"`
	Grace      time.Duration `json:"grace_ns"`
	Steps      []PlanStep    `json:"steps"`
	Notes      []string      `json:"notes"`
}

// Placeholders stand for the keys a rotation would mint; the plan shows them by these labels.
var (
	newKeyLabel      = "<new>"
	newReadOnlyLabel = "<new read-only>"
)

// Plan reads the store and the nodes and returns the restarts a rotation would make, in order, computed by the same
// steps a rotation takes. It mints nothing, writes nothing and restarts nothing.
func (r *Rotator) Plan(ctx context.Context, req Request) (Plan, error) {
	p := Plan{Deployment: r.opt.Deployment, Kind: KindScheduled, Grace: r.opt.Grace}
	if req.Emergency {
		p.Kind = KindEmergency
	}
	jr, _, err := r.store.ReadJournal(ctx, r.opt.Deployment)
	if err != nil {
		return p, err
	}
	if !jr.Phase.Final() {
		p.Resume = string(jr.Phase)
		p.Notes = append(p.Notes, fmt.Sprintf("rotation %s was interrupted in phase %s: a run resumes it first", jr.RotationID, jr.Phase))
	}
	have, err := r.nodeSlots(ctx)
	if err != nil {
		return p, err
	}
	j := Journal{PendingKey: Key{v: newKeyLabel}}
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotAdmin)
	switch {
	case errors.Is(err, ErrNotFound) && req.Adopt:
		j.OldKey = have[0].APIKey
		p.Notes = append(p.Notes, "the store has no key: the nodes' api_key would be adopted (imported) first")
	case errors.Is(err, ErrNotFound):
		return p, fmt.Errorf("deployment %s: %w; run with adopt to import the key the nodes use now", r.opt.Deployment, ErrNoKey)
	case err != nil:
		return p, err
	default:
		j.OldKey = cur.Key
	}
	if r.opt.ReadOnly {
		j.PendingReadOnly, j.OldReadOnly = Key{v: newReadOnlyLabel}, have[0].ReadOnlyKey
	}
	p.Current = r.fp(j.OldKey)
	label := func(k Key) string {
		if k.v == newKeyLabel || k.v == newReadOnlyLabel {
			return k.v
		}
		return r.fp(k)
	}
	view := func(s Slots) SlotView {
		return SlotView{APIKey: label(s.APIKey), AltAPIKey: label(s.AltAPIKey), ReadOnlyKey: label(s.ReadOnlyKey), JWTRBAC: s.JWTRBAC}
	}
	add := func(phase Phase, t target, note string) {
		for i, n := range r.nodes {
			after := t.edit(have[i])
			p.Steps = append(p.Steps, PlanStep{Phase: phase, Node: n.Name(), Method: n.Method(), Before: view(have[i]), After: view(after), Checks: note})
			have[i] = after
		}
	}
	old := p.Current
	if req.Emergency {
		add(PhaseCutting, r.cutTarget(j), "all nodes at once; "+newKeyLabel+" accepted, "+old+" refused")
		p.Notes = append(p.Notes, "emergency: no overlap; clients holding "+old+" are refused as soon as their node restarts; "+newKeyLabel+" is published after every node took it")
		return p, nil
	}
	if r.opt.Cluster {
		p.Notes = append(p.Notes, "cluster: followers restart before the leader (the order is chosen again before each restart, so the leader at that moment goes last); after each restart the node must answer /readyz 200 with every replica of every collection Active and no shard transfer before the next node goes down")
	}
	add(PhaseStaging, r.staged(j, "stage"), old+" and "+newKeyLabel+" accepted")
	p.Notes = append(p.Notes, fmt.Sprintf("then %s is published as current in the store (%s kept as the previous version), then a grace of %s", newKeyLabel, old, r.opt.Grace))
	if r.opt.ReadOnly {
		p.Notes = append(p.Notes, "read-only consumers get a read JWT signed with "+newKeyLabel+" (accepted by every node from here on) before any node changes its read-only key")
	}
	if len(r.opt.Keys) > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%d named keys are published for %s at the same time (JWTs signed with it for the scoped ones)", len(r.opt.Keys), newKeyLabel))
	}
	if r.needsInternalAuth(have) {
		add(PhaseSwapping, r.swapped(j), old+" and "+newKeyLabel+" accepted")
		p.Notes = append(p.Notes, "3 restarts per node: the peers run with enforce_internal_auth and send each other their primary key, so every node first takes "+newKeyLabel+" as primary with "+old+" as alt (peers not yet swapped still send "+old+"), and only then drops "+old+"; the 2-restart plan would have promoted nodes refuse their peers' "+old)
	} else if r.opt.Cluster {
		p.Notes = append(p.Notes, "2 restarts per node: enforce_internal_auth is off, so peer traffic does not depend on the keys")
	}
	add(PhasePromoting, r.promoted(j), newKeyLabel+" accepted, "+old+" refused")
	if r.opt.ReadOnly {
		p.Notes = append(p.Notes, "then "+newReadOnlyLabel+" is published for read-only consumers")
	} else {
		p.Notes = append(p.Notes, "the read-only slot is left as it is on every node (read_only: keep)")
	}
	p.Notes = append(p.Notes, "then "+old+" is labelled retired in the store")
	return p, nil
}

// SlotNone marks the check with a fresh key never issued, which every node must refuse with 401 (else it is open).
const SlotNone Slot = "never-issued"

// NodeCheck is one node's answer to one of the store's current credentials, or (SlotNone) to a key never issued.
type NodeCheck struct {
	Node     string `json:"node"`
	Slot     Slot   `json:"slot"`
	Accepted bool   `json:"accepted"`
	Error    string `json:"error,omitempty"`
}

// Verification is the result of Verify.
type Verification struct {
	Deployment  string      `json:"deployment"`
	Fingerprint string      `json:"fingerprint"`
	Version     int         `json:"version"`
	ReadOnly    string      `json:"read_only_fingerprint,omitempty"`
	Nodes       []NodeCheck `json:"nodes"`
}

// Verify checks every node against the store's current admin key (and read-only credential, when the store has
// one) with an authenticated call. It returns an error wrapping ErrDrift when a node does not accept one.
func (r *Rotator) Verify(ctx context.Context) (Verification, error) {
	v := Verification{Deployment: r.opt.Deployment}
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotAdmin)
	if errors.Is(err, ErrNotFound) {
		return v, fmt.Errorf("deployment %s: %w", r.opt.Deployment, ErrNoKey)
	}
	if err != nil {
		return v, err
	}
	v.Fingerprint, v.Version = r.fp(cur.Key), cur.Version
	creds := map[Slot]Key{SlotAdmin: cur.Key}
	ro, err := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotReadOnly)
	switch {
	case err == nil:
		v.ReadOnly, creds[SlotReadOnly] = r.fp(ro.Key), ro.Key
	case !errors.Is(err, ErrNotFound):
		return v, err
	}
	drift := map[string]string{}
	var open []string
	r.remember(cur.Key, ro.Key)
	for _, n := range r.nodes {
		for _, slot := range []Slot{SlotAdmin, SlotReadOnly} {
			k, ok := creds[slot]
			if !ok {
				continue
			}
			c := NodeCheck{Node: n.Name(), Slot: slot, Accepted: true}
			if err := n.Probe(ctx, k); err != nil {
				c.Accepted, c.Error = false, r.downError(ctx, n, err).Error()
				drift[n.Name()+" ("+string(slot)+")"] = c.Error
			}
			v.Nodes = append(v.Nodes, c)
		}
		c := NodeCheck{Node: n.Name(), Slot: SlotNone, Accepted: false}
		if err := r.refusesStrangers(ctx, n); err != nil {
			c.Accepted, c.Error = errors.Is(err, ErrOpen), err.Error()
			if c.Accepted {
				open = append(open, n.Name())
			}
			drift[n.Name()+" (a key never issued)"] = c.Error
		}
		v.Nodes = append(v.Nodes, c)
	}
	if len(drift) > 0 {
		return v, &DriftError{Deployment: r.opt.Deployment, Nodes: drift, Open: open}
	}
	return v, nil
}

// Status is what the store says about a deployment.
type Status struct {
	Deployment  string    `json:"deployment"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Version     int       `json:"version,omitempty"`
	Since       time.Time `json:"current_since,omitzero"`
	AgeSeconds  int64     `json:"age_seconds,omitempty"`
	RotationID  string    `json:"rotation_id,omitempty"`
	ReadOnly    string    `json:"read_only_fingerprint,omitempty"`
	ReadOnlyAs  string    `json:"read_only_kind,omitempty"`
	// ReadOnlySince is when the read-only credential became current.
	ReadOnlySince time.Time `json:"read_only_since,omitzero"`
	LastPhase     Phase     `json:"journal_phase,omitempty"`
	LastID        string    `json:"journal_rotation_id,omitempty"`
	LastError     string    `json:"journal_error,omitempty"`
	LastUpdate    time.Time `json:"journal_updated,omitzero"`
	LockedBy      string    `json:"locked_by,omitempty"`
	LockedUntil   time.Time `json:"locked_until,omitzero"`
}

// Status reads the deployment's current key record and journal.
func (r *Rotator) Status(ctx context.Context) (Status, error) {
	s := Status{Deployment: r.opt.Deployment}
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotAdmin)
	switch {
	case err == nil:
		s.Fingerprint, s.Version, s.Since, s.RotationID = r.fp(cur.Key), cur.Version, cur.Since, cur.RotationID
		s.AgeSeconds = int64(r.now().Sub(cur.Since).Seconds())
	case !errors.Is(err, ErrNotFound):
		return s, err
	}
	ro, err := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotReadOnly)
	switch {
	case err == nil:
		s.ReadOnly, s.ReadOnlyAs, s.ReadOnlySince = r.fp(ro.Key), ro.Kind, ro.Since
	case !errors.Is(err, ErrNotFound):
		return s, err
	}
	j, _, err := r.store.ReadJournal(ctx, r.opt.Deployment)
	if err != nil {
		return s, err
	}
	s.LastPhase, s.LastID, s.LastError, s.LastUpdate = j.Phase, j.RotationID, j.Error, j.UpdatedAt
	if j.Owner != "" && r.now().Before(j.LeaseUntil) {
		s.LockedBy, s.LockedUntil = j.Owner, j.LeaseUntil
	}
	return s, nil
}
