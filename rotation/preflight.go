package rotation

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// begin runs the preflight, mints the new key and journals it before any node is touched.
func (h *holder) begin(ctx context.Context, req Request) error {
	cur, err := h.currentKey(ctx, req)
	if err != nil {
		return err
	}
	have, ro, err := h.preflight(ctx, cur.Key)
	if err != nil {
		return err
	}
	var newRO Key
	if h.opt.ReadOnly {
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
	internalAuth := h.needsInternalAuth(have)
	now := h.now()
	err = h.writeJournal(ctx, func(j *Journal) {
		*j = Journal{
			InternalAuth: internalAuth,
			RotationID:   now.UTC().Format("20060102T150405Z") + "-" + newID()[:6], Kind: kind, Phase: phase,
			PendingKey: newKey, OldKey: cur.Key, BaseVersion: cur.Version, StartedAt: now,
			PendingReadOnly: newRO, OldReadOnly: ro.Key, ReadOnlyBase: ro.Version,
			OldFingerprint: h.fp(cur.Key), PendingFingerprint: h.fp(newKey),
		}
	})
	if err != nil {
		return err
	}
	j := h.lease.journal()
	h.emitJ(j, Event{Step: "minted", Fingerprint: h.fp(newKey), Message: "new key minted and journaled"})
	h.checkpoint("minted")
	return nil
}

// currentKey reads the store's current admin record or, when it has none and the request allows it, adopts the
// nodes' key.
func (h *holder) currentKey(ctx context.Context, req Request) (KeyRecord, error) {
	cur, err := h.store.ReadCurrent(ctx, h.opt.Deployment, SlotAdmin)
	if !errors.Is(err, ErrNotFound) {
		return cur, err
	}
	if !req.Adopt {
		return cur, fmt.Errorf("deployment %s: %w; run with adopt to import the key the nodes use now", h.opt.Deployment, ErrNoKey)
	}
	cur, err = h.adopt(ctx)
	h.rep.Adopted = err == nil
	return cur, err
}

// preflight proves the deployment can rotate away from key: every node accepts it and none is open, every node's
// configuration is one the rotation can change (have: the slots of each), a cluster is safe for a rolling restart,
// and with ReadOnly every node accepts the read-only record ro (imported from the nodes when the store has none).
func (h *holder) preflight(ctx context.Context, key Key) (have []Slots, ro KeyRecord, err error) {
	h.emit(Event{Step: "preflight", Fingerprint: h.fp(key), Message: fmt.Sprintf("checking %d nodes against the current key", len(h.nodes))})
	// Every node answers first (an open node is reported as such, with its likely cause), then every node's
	// configuration must be one the rotation can change.
	if err := h.checkAll(ctx, key); err != nil {
		return nil, ro, err
	}
	if have, err = h.nodeSlots(ctx); err != nil {
		return nil, ro, fmt.Errorf("preflight: %w", err)
	}
	if h.opt.Cluster {
		if err := h.clusterPreflight(ctx, key); err != nil {
			return nil, ro, err
		}
	}
	if !h.opt.ReadOnly {
		return have, ro, nil
	}
	if ro, err = h.readOnlyCurrent(ctx); err != nil {
		return nil, ro, err
	}
	if !ro.Key.IsZero() {
		if err := h.checkAll(ctx, ro.Key); err != nil {
			return nil, ro, fmt.Errorf("read-only key: %w", err)
		}
	}
	return have, ro, nil
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
