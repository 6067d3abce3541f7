package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// drive runs the journal's phases to a final one.
func (h *holder) drive(ctx context.Context) error {
	for {
		j := h.lease.journal()
		var err error
		switch j.Phase {
		case PhaseDone, PhaseRolledBack:
			return nil
		case PhaseStaging:
			err = h.eachNode(ctx, h.staged(j, "stage"), PhasePublishing)
		case PhaseCutting:
			err = h.cut(ctx)
		case PhasePublishing:
			err = h.publish(ctx)
		case PhaseGrace:
			err = h.grace(ctx)
		case PhaseSwapping:
			err = h.eachNode(ctx, h.swapped(j), PhasePromoting)
			if err != nil && !stopped(ctx, err) {
				err = h.unpromote(ctx, err)
			}
		case PhasePromoting:
			err = h.eachNode(ctx, h.promoted(j), PhaseRetiring)
			if err != nil && !stopped(ctx, err) {
				err = h.unpromote(ctx, err)
			}
		case PhaseRetiring:
			err = h.retire(ctx)
		case PhaseRollingBack:
			err = h.rollback(ctx)
		default:
			return fmt.Errorf("journal of %s: unknown phase %q", h.opt.Deployment, j.Phase)
		}
		if err == nil {
			continue
		}
		// A node found open or refusing before the new key was published counts as a staging failure.
		nodeBeforePublish := j.Phase == PhasePublishing && errors.Is(err, ErrDrift)
		if stopped(ctx, err) || (j.Phase != PhaseStaging && j.Phase != PhaseCutting && !nodeBeforePublish) {
			return err
		}
		// A node failed while the store's current key is still the old one: roll every node back to it. Once the new
		// key is published (a cut escalated from a later phase, a publish whose answer was lost), no rollback can
		// be: the journal stays in its phase for a rerun to finish the rotation.
		if published, perr := h.published(ctx, j); perr != nil || published {
			return errors.Join(err, perr)
		}
		h.opt.Logger.Error("rotation failed; rolling back", "deployment", h.opt.Deployment, "phase", string(j.Phase), "error", err)
		if jerr := h.writeJournal(ctx, func(j *Journal) { j.Phase, j.Error, j.NodesDone = PhaseRollingBack, err.Error(), nil }); jerr != nil {
			return errors.Join(err, jerr)
		}
	}
}

// published says whether the store's current key is already the one this rotation publishes.
func (h *holder) published(ctx context.Context, j Journal) (bool, error) {
	cur, err := h.store.ReadCurrent(ctx, h.opt.Deployment, SlotAdmin)
	if err != nil {
		return false, fmt.Errorf("read the current key: %w", err)
	}
	return cur.RotationID == j.RotationID, nil
}

// stopped says whether err means "stop now and leave the journal for the next run" rather than "roll back".
func stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, ErrLeaseLost) || errors.Is(err, context.Canceled)
}

// escalate turns the interrupted scheduled rotation in the journal into an emergency cut: every node gets the pending
// key alone at once, so the leaked current key is refused as fast as the nodes restart. A rotation rolling back
// finishes its rollback first (Rotate then starts the emergency); one retiring has already dropped the old key.
func (h *holder) escalate(ctx context.Context) error {
	j := h.lease.journal()
	if j.Phase == PhaseRollingBack {
		return nil
	}
	err := h.writeJournal(ctx, func(j *Journal) {
		j.Kind = KindEmergency
		if j.Phase != PhaseRetiring {
			j.Phase, j.NodesDone, j.Node = PhaseCutting, nil, ""
		}
	})
	if err != nil {
		return err
	}
	h.rep.Escalated = true
	h.emitJ(h.lease.journal(), Event{Step: "escalated", Fingerprint: h.fp(j.PendingKey), Message: fmt.Sprintf("emergency: the interrupted scheduled rotation (phase %s) becomes an emergency cut with no overlap", j.Phase)})
	h.checkpoint("escalated")
	return nil
}

// cut is the emergency step: every node at once gets the new key alone, so the old one is refused as fast as the
// nodes restart.
func (h *holder) cut(ctx context.Context) error {
	j := h.lease.journal()
	t := h.cutTarget(j)
	errs := make([]error, len(h.nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, n := range h.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := &holder{Rotator: h.Rotator, lease: h.lease, rep: &Report{}} // nodes move at once: each counts apart
			if err := one.moveNode(context.WithoutCancel(ctx), j, n, t); err != nil {
				errs[i] = fmt.Errorf("cut node %s: %w", n.Name(), err)
			}
			mu.Lock()
			h.rep.Restarts += one.rep.Restarts
			h.rep.StartedNodes = append(h.rep.StartedNodes, one.rep.StartedNodes...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := h.writeJournal(ctx, func(j *Journal) { j.Phase = PhasePublishing }); err != nil {
		return err
	}
	h.checkpoint("cut")
	return nil
}

// publish makes the new key current for consumers (a new version; the old one stays readable as the previous).
func (h *holder) publish(ctx context.Context) error {
	j := h.lease.journal()
	// Published only once every node accepts it and none is open.
	if err := h.checkAll(ctx, j.PendingKey); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	// Fenced like a node step: a rotator frozen past its lease during the checks, while another took over (and
	// perhaps rolled the nodes back), stops here instead of publishing a key the nodes may no longer accept.
	if err := h.fence(ctx); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	rec := KeyRecord{Key: j.PendingKey, Fingerprint: h.fp(j.PendingKey), Since: h.now(), RotationID: j.RotationID}
	_, err := h.store.Publish(ctx, h.opt.Deployment, SlotAdmin, rec, j.BaseVersion)
	if errors.Is(err, ErrConflict) {
		// Published already (a run that crashed after publishing, or a lost answer), or changed by someone else.
		cur, rerr := h.store.ReadCurrent(ctx, h.opt.Deployment, SlotAdmin)
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
	h.emitJ(j, Event{Step: "published", Fingerprint: rec.Fingerprint, Message: "new key is current for consumers"})
	next := PhaseGrace
	if j.Kind == KindEmergency {
		next = PhaseRetiring
	} else if h.opt.ReadOnly {
		if err := h.publishBridge(ctx); err != nil {
			return err
		}
	}
	if len(h.opt.Keys) > 0 {
		// Proved, then fenced as every publish: a rotator frozen during the proof, while others finished this
		// rotation and began the next, would put JWTs signed with a key they retire over theirs.
		now := h.now()
		if err := h.proveKeys(ctx, j.PendingKey, now); err != nil {
			return fmt.Errorf("publish named keys: %w", err)
		}
		if err := h.fence(ctx); err != nil {
			return fmt.Errorf("publish named keys: %w", err)
		}
		n, err := h.publishKeys(ctx, j.PendingKey, j.RotationID, now)
		if err != nil {
			return fmt.Errorf("publish named keys: %w", err)
		}
		h.emitJ(j, Event{Step: "published", Message: fmt.Sprintf("%d named keys minted for the new key and published (%d of %d this run)", len(h.opt.Keys), n, len(h.opt.Keys))})
		h.checkpoint("keys published")
	}
	// Progress only: written by the next fence, or before the grace's wait (a crash before publishes again, which
	// finds its own record).
	now := h.now()
	h.noteJournal(func(j *Journal) { j.Phase, j.PublishedAt = next, now })
	h.checkpoint("published")
	return nil
}

// bridgeLifetime is how long the read JWT that bridges read-only clients stays valid: long enough for any grace and
// for an operator to finish an interrupted rotation, short enough that a copy kept by mistake dies on its own.
const bridgeLifetime = 7 * 24 * time.Hour

// publishBridge gives read-only consumers a read JWT signed with the new admin key (which every node accepts in one
// of its slots now), journaled before it is published and checked on every node first. Nodes may then change their
// read-only key without any read-only client being refused.
func (h *holder) publishBridge(ctx context.Context) error {
	j := h.lease.journal()
	if j.Bridge.IsZero() {
		bridge, err := signToken(j.PendingKey, "r", h.now().Add(max(bridgeLifetime, 10*h.opt.Grace)))
		if err != nil {
			return err
		}
		if err := h.writeJournal(ctx, func(j *Journal) { j.Bridge = bridge }); err != nil {
			return err
		}
		j = h.lease.journal()
	}
	if err := h.checkAll(ctx, j.Bridge); err != nil {
		return fmt.Errorf("read JWT: %w", err)
	}
	rec := KeyRecord{Key: j.Bridge, Kind: CredentialJWT, Fingerprint: h.fp(j.Bridge), Since: h.now(), RotationID: j.RotationID}
	if err := h.publishFenced(ctx, rec, j.ReadOnlyBase, "read JWT"); err != nil {
		return err
	}
	h.emitJ(j, Event{Step: "published", Fingerprint: rec.Fingerprint, Message: "read JWT is the read-only credential while nodes change read-only keys"})
	h.checkpoint("bridged")
	return nil
}

// publishFenced publishes a read-only credential (publishOnce) after proving the lease, as the admin publish does: a
// rotator frozen before this point, while others finished this rotation and began the next, would put its
// credential over theirs.
func (h *holder) publishFenced(ctx context.Context, rec KeyRecord, cas int, what string) error {
	if err := h.fence(ctx); err != nil {
		return fmt.Errorf("publish %s: %w", what, err)
	}
	if _, err := h.publishOnce(ctx, SlotReadOnly, rec, cas); err != nil {
		return fmt.Errorf("publish %s: %w", what, err)
	}
	return nil
}

// publishOnce publishes rec unless this rotation already published a credential of the same kind there (a rerun
// after a crash, or a lost answer), or its key, the last credential a rotation publishes in a slot (a rotator
// frozen before publishing the read JWT, while another finished the rotation, must not put the JWT back over the
// new read-only key). It says whether it wrote.
func (r *Rotator) publishOnce(ctx context.Context, slot Slot, rec KeyRecord, cas int) (bool, error) {
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment, slot)
	switch {
	case err == nil && cur.RotationID == rec.RotationID && (cur.Kind == rec.Kind || cur.Kind == CredentialKey):
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
func (h *holder) grace(ctx context.Context) error {
	j := h.lease.journal()
	wait := j.PublishedAt.Add(h.opt.Grace).Sub(h.now())
	if wait > 0 {
		if h.lease.pending() { // the journal says grace (and since when) while it waits
			if err := h.writeJournal(ctx, func(*Journal) {}); err != nil {
				return err
			}
		}
		h.emitJ(j, Event{Step: "grace", Message: fmt.Sprintf("waiting %s for consumers to move to the new key", wait.Round(time.Millisecond))})
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-h.opt.Clock.After(wait):
		}
	}
	next := PhasePromoting
	if j.InternalAuth {
		next = PhaseSwapping
	}
	// Progress only: the first node step's fence writes it.
	h.noteJournal(func(j *Journal) { j.Phase, j.NodesDone = next, nil })
	h.checkpoint("grace")
	return nil
}

// unpromote handles a node that failed its promotion: the store's current key is already the new one, so the node
// goes back to the staged slots (new key primary, old key alternate), which accept it; the journal stays resumable.
func (h *holder) unpromote(ctx context.Context, cause error) error {
	j := h.lease.journal()
	h.opt.Logger.Error("promotion failed; restoring the staged slots on the node", "deployment", h.opt.Deployment, "node", j.Node, "error", cause)
	for _, n := range h.nodes {
		if n.Name() != j.Node {
			continue
		}
		restore := h.staged(j, "restore")
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
		if err := h.moveNode(ctx, j, n, restore); err != nil {
			return errors.Join(cause, fmt.Errorf("restore node %s: %w", n.Name(), err))
		}
	}
	if err := h.writeJournal(ctx, func(j *Journal) { j.Node, j.Error = "", cause.Error() }); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// retire labels the old key retired in the store and ends the rotation.
func (h *holder) retire(ctx context.Context) error {
	j := h.lease.journal()
	if h.lease.pending() {
		// The journal says retiring before anything is retired: no rerun goes back to a phase whose nodes still
		// accept the old key.
		if err := h.writeJournal(ctx, func(*Journal) {}); err != nil {
			return err
		}
	}
	if h.opt.ReadOnly && !j.PendingReadOnly.IsZero() {
		rec := KeyRecord{Key: j.PendingReadOnly, Kind: CredentialKey, Fingerprint: h.fp(j.PendingReadOnly), Since: h.now(), RotationID: j.RotationID}
		if err := h.publishFenced(ctx, rec, j.ReadOnlyBase, "read-only key"); err != nil {
			return err
		}
		h.emitJ(j, Event{Step: "published", Fingerprint: rec.Fingerprint, Message: "new read-only key is current for read-only consumers"})
		h.checkpoint("read-only published")
		if j.ReadOnlyBase > 0 {
			if err := h.store.Retire(ctx, h.opt.Deployment, SlotReadOnly, j.ReadOnlyBase, h.now()); err != nil {
				return fmt.Errorf("retire: %w", err)
			}
		}
	}
	if j.BaseVersion > 0 {
		if err := h.store.Retire(ctx, h.opt.Deployment, SlotAdmin, j.BaseVersion, h.now()); err != nil {
			return fmt.Errorf("retire: %w", err)
		}
	}
	// A full-access named key's record held the old admin key in its previous version: retired (and soft-deleted
	// after the retention) like the admin record's.
	for _, k := range h.opt.Keys {
		if !k.Full {
			continue
		}
		rec, err := h.store.ReadCurrent(ctx, h.opt.Deployment, k.Slot())
		if err != nil {
			return fmt.Errorf("retire named key %s: %w", k.Name, err)
		}
		if rec.RotationID == j.RotationID && rec.Version > 1 {
			if err := h.store.Retire(ctx, h.opt.Deployment, k.Slot(), rec.Version-1, h.now()); err != nil {
				return fmt.Errorf("retire named key %s: %w", k.Name, err)
			}
		}
	}
	if err := h.endJournal(ctx, func(j *Journal) { j.Phase, j.Node, j.Error = PhaseDone, "", ""; j.forgetKeys() }); err != nil {
		return err
	}
	h.emitJ(j, Event{Step: "retired", Fingerprint: h.fp(j.OldKey), Message: "old key refused by every node and retired"})
	h.checkpoint("retired")
	return nil
}

// rollback puts every node back on the store's current key (the old one) alone and ends the rotation rolled back.
func (h *holder) rollback(ctx context.Context) error {
	j := h.lease.journal()
	cur, err := h.store.ReadCurrent(ctx, h.opt.Deployment, SlotAdmin)
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	if cur.RotationID == j.RotationID {
		return fmt.Errorf("rollback: the new key is already published (version %d); rerun to finish the rotation", cur.Version)
	}
	h.emitJ(j, Event{Step: "rollback", Fingerprint: h.fp(cur.Key), Message: "putting every node back on the current key: " + j.Error})
	h.checkpoint("rolling back")
	back := target{step: "rollback", edit: func(s Slots) Slots {
		s.APIKey, s.AltAPIKey = cur.Key, Key{}
		if h.opt.ReadOnly {
			s.ReadOnlyKey = j.OldReadOnly
		}
		return s
	}, accept: keys(cur.Key, j.OldReadOnly), refuse: keys(j.PendingKey)}
	stepCtx := context.WithoutCancel(ctx) // a rollback once begun is finished, whatever a stop request says
	order := h.nodes
	if h.opt.Cluster {
		order = h.downFirst(stepCtx, cur.Key)
	}
	for _, n := range order {
		before := h.rep.Restarts
		if err := h.fence(stepCtx); err != nil { // between nodes: a rollback by a rotator that lost its lease stops
			return fmt.Errorf("rollback: %w", err)
		}
		if err := h.moveNode(stepCtx, j, n, back); err != nil {
			return fmt.Errorf("rollback node %s: %w", n.Name(), err)
		}
		if h.opt.Cluster && h.rep.Restarts > before {
			// Wait for the restarted node itself before the next goes down (other nodes may still be down).
			if _, err := h.waitSettled(stepCtx, "after node "+n.Name()+" rolled back", cur.Key, n); err != nil {
				return fmt.Errorf("rollback: %w", err)
			}
		}
	}
	if h.opt.Cluster {
		// Every node is back on the current key; the whole cluster must settle before the run ends.
		if _, err := h.waitSettled(stepCtx, "after the rollback", cur.Key, h.nodes...); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
	}
	if err := h.endJournal(ctx, func(j *Journal) { j.Phase, j.Node, j.NodesDone = PhaseRolledBack, "", nil; j.forgetKeys() }); err != nil {
		return err
	}
	h.checkpoint("rolled_back")
	return nil
}
