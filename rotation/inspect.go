package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SlotView shows a node's slots by fingerprint ("" = unset, "<new>" = the key a rotation would mint).
type SlotView struct {
	APIKey      string `json:"api_key"`
	AltAPIKey   string `json:"alt_api_key"`
	ReadOnlyKey string `json:"read_only_api_key"`
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

const newKeyLabel = "<new>"

// Plan reads the store and the nodes and returns the restarts a rotation would make, in order. It mints nothing,
// writes nothing and restarts nothing.
func (r *Rotator) Plan(ctx context.Context, req Request) (Plan, error) {
	p := Plan{Deployment: r.opt.Deployment, Kind: KindScheduled, Grace: r.opt.Grace}
	if req.Emergency {
		p.Kind = KindEmergency
	}
	j, _, err := r.store.ReadJournal(ctx, r.opt.Deployment)
	if err != nil {
		return p, err
	}
	if !j.Phase.Final() {
		p.Resume = string(j.Phase)
		p.Notes = append(p.Notes, fmt.Sprintf("rotation %s was interrupted in phase %s: a run resumes it first", j.RotationID, j.Phase))
	}
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment)
	switch {
	case errors.Is(err, ErrNotFound) && req.Adopt:
		p.Notes = append(p.Notes, "the store has no key: the nodes' api_key would be adopted (imported) first")
	case errors.Is(err, ErrNotFound):
		return p, fmt.Errorf("deployment %s: %w; run with adopt to import the key the nodes use now", r.opt.Deployment, ErrNoKey)
	case err != nil:
		return p, err
	default:
		p.Current = r.fp(cur.Key)
	}
	views := make([]SlotView, len(r.nodes))
	for i, n := range r.nodes {
		s, err := n.Keys(ctx)
		if err != nil {
			return p, err
		}
		views[i] = SlotView{APIKey: r.fp(s.APIKey), AltAPIKey: r.fp(s.AltAPIKey), ReadOnlyKey: r.fp(s.ReadOnlyKey)}
		if p.Current == "" {
			p.Current = views[i].APIKey
		}
	}
	add := func(phase Phase, before []SlotView, after func(SlotView) SlotView, checks string) {
		for i, n := range r.nodes {
			a := after(before[i])
			p.Steps = append(p.Steps, PlanStep{Phase: phase, Node: n.Name(), Method: n.Method(), Before: before[i], After: a, Checks: checks})
			before[i] = a
		}
	}
	old := p.Current
	if req.Emergency {
		add(PhaseCutting, views, func(v SlotView) SlotView { return SlotView{APIKey: newKeyLabel, ReadOnlyKey: v.ReadOnlyKey} },
			"all nodes at once; "+newKeyLabel+" accepted, "+old+" refused")
		p.Notes = append(p.Notes, "emergency: no overlap; clients holding "+old+" are refused as soon as their node restarts; "+newKeyLabel+" is published after every node took it")
		return p, nil
	}
	add(PhaseStaging, views, func(v SlotView) SlotView {
		return SlotView{APIKey: old, AltAPIKey: newKeyLabel, ReadOnlyKey: v.ReadOnlyKey}
	}, old+" and "+newKeyLabel+" accepted")
	p.Notes = append(p.Notes, fmt.Sprintf("then %s is published as current in the store (%s kept as the previous version), then a grace of %s", newKeyLabel, old, r.opt.Grace))
	add(PhasePromoting, views, func(v SlotView) SlotView { return SlotView{APIKey: newKeyLabel, ReadOnlyKey: v.ReadOnlyKey} },
		newKeyLabel+" accepted, "+old+" refused")
	p.Notes = append(p.Notes, "then "+old+" is labelled retired in the store; the read-only slot is left as it is on every node")
	return p, nil
}

// NodeCheck is one node's answer to the store's current key.
type NodeCheck struct {
	Node     string `json:"node"`
	Accepted bool   `json:"accepted"`
	Error    string `json:"error,omitempty"`
}

// Verification is the result of Verify.
type Verification struct {
	Deployment  string      `json:"deployment"`
	Fingerprint string      `json:"fingerprint"`
	Version     int         `json:"version"`
	Nodes       []NodeCheck `json:"nodes"`
}

// Verify checks every node against the store's current key with an authenticated call. It returns an error
// wrapping ErrDrift when a node does not accept it.
func (r *Rotator) Verify(ctx context.Context) (Verification, error) {
	v := Verification{Deployment: r.opt.Deployment}
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment)
	if errors.Is(err, ErrNotFound) {
		return v, fmt.Errorf("deployment %s: %w", r.opt.Deployment, ErrNoKey)
	}
	if err != nil {
		return v, err
	}
	v.Fingerprint, v.Version = r.fp(cur.Key), cur.Version
	drift := map[string]string{}
	for _, n := range r.nodes {
		c := NodeCheck{Node: n.Name(), Accepted: true}
		if err := n.Probe(ctx, cur.Key); err != nil {
			c.Accepted, c.Error = false, err.Error()
			drift[n.Name()] = c.Error
		}
		v.Nodes = append(v.Nodes, c)
	}
	if len(drift) > 0 {
		return v, &DriftError{Deployment: r.opt.Deployment, Nodes: drift}
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
	LastPhase   Phase     `json:"journal_phase,omitempty"`
	LastID      string    `json:"journal_rotation_id,omitempty"`
	LastError   string    `json:"journal_error,omitempty"`
	LastUpdate  time.Time `json:"journal_updated,omitzero"`
	LockedBy    string    `json:"locked_by,omitempty"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

// Status reads the deployment's current key record and journal.
func (r *Rotator) Status(ctx context.Context) (Status, error) {
	s := Status{Deployment: r.opt.Deployment}
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment)
	switch {
	case err == nil:
		s.Fingerprint, s.Version, s.Since, s.RotationID = r.fp(cur.Key), cur.Version, cur.Since, cur.RotationID
		s.AgeSeconds = int64(r.opt.Now().Sub(cur.Since).Seconds())
	case !errors.Is(err, ErrNotFound):
		return s, err
	}
	j, _, err := r.store.ReadJournal(ctx, r.opt.Deployment)
	if err != nil {
		return s, err
	}
	s.LastPhase, s.LastID, s.LastError, s.LastUpdate = j.Phase, j.RotationID, j.Error, j.UpdatedAt
	if j.Owner != "" && r.opt.Now().Before(j.LeaseUntil) {
		s.LockedBy, s.LockedUntil = j.Owner, j.LeaseUntil
	}
	return s, nil
}
