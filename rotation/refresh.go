package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// NamedKeyState is one named key as consumers find it: its fingerprint and, for a JWT, when it expires.
type NamedKeyState struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
	Missing     bool      `json:"missing,omitempty"`
}

// refreshShare is the part of a JWT's lifetime left when it is re-minted: a third, so a daemon polling every
// poll_interval and re-minting within ready_timeout always does it before the JWT expires (the config refuses a ttl
// below 3 x (poll_interval + ready_timeout)).
const refreshShare = 3

// NamedKeys reads every named key's record. A JWT expires its TTL after it was minted (its record's Since).
func (r *Rotator) NamedKeys(ctx context.Context) ([]NamedKeyState, error) {
	out := make([]NamedKeyState, 0, len(r.opt.Keys))
	for _, k := range r.opt.Keys {
		st := NamedKeyState{Name: k.Name, Kind: CredentialKey}
		if !k.Full {
			st.Kind = CredentialJWT
		}
		rec, err := r.store.ReadCurrent(ctx, r.opt.Deployment, k.Slot())
		switch {
		case errors.Is(err, ErrNotFound):
			st.Missing = true
		case err != nil:
			return out, fmt.Errorf("named key %s: %w", k.Name, err)
		default:
			st.Fingerprint = rec.Fingerprint
			if !k.Full {
				st.Expires = rec.Since.Add(k.TTL)
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// dueKeys returns the indexes (in Options.Keys, and so in states) of the JWT named keys to re-mint now: missing, or
// with less than a third of their lifetime left.
func (r *Rotator) dueKeys(states []NamedKeyState) []int {
	var due []int
	now := r.now()
	for i, k := range r.opt.Keys {
		if k.Full {
			continue
		}
		if st := states[i]; st.Missing || st.Expires.Sub(now) < k.TTL/refreshShare {
			due = append(due, i)
		}
	}
	return due
}

// RefreshNamedKeys re-mints, signed with the current admin key, every JWT named key that is missing or has less
// than a third of its lifetime left, so no consumer holds an expired JWT between two admin rotations. It takes the
// deployment's lease; while a rotation is in flight it does nothing (the rotation re-mints every key). It first
// proves on every node that a JWT signed with the current key is accepted. It returns the states after the refresh
// and how many keys it published.
func (r *Rotator) RefreshNamedKeys(ctx context.Context) ([]NamedKeyState, int, error) {
	states, err := r.NamedKeys(ctx)
	if err != nil || len(r.dueKeys(states)) == 0 {
		return states, 0, err
	}
	l, err := acquire(ctx, r.store, r.opt.Deployment, r.opt.Owner, r.opt.LeaseTTL, r.opt.Clock.Now)
	if err != nil {
		return states, 0, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = l.release(rctx) // a lease not released expires on its own
	}()
	if !l.journal().Phase.Final() {
		return states, 0, nil
	}
	cur, err := r.store.ReadCurrent(ctx, r.opt.Deployment, SlotAdmin)
	if err != nil {
		return states, 0, fmt.Errorf("refresh named keys: %w", err)
	}
	if states, err = r.NamedKeys(ctx); err != nil { // again, under the lease
		return states, 0, err
	}
	due := r.dueKeys(states)
	if len(due) == 0 {
		return states, 0, nil
	}
	now := r.now()
	if err := r.proveJWT(ctx, cur.Key, r.opt.Keys[due[0]], now); err != nil {
		return states, 0, fmt.Errorf("refresh named keys: %w", err)
	}
	refreshID := "refresh-" + now.UTC().Format("20060102T150405Z") + "-" + newID()[:6]
	for n, i := range due {
		k := r.opt.Keys[i]
		rec, _, err := r.publishNamed(ctx, k, cur.Key, refreshID, now)
		if err != nil {
			return states, n, fmt.Errorf("refresh named key %s: %w", k.Name, err)
		}
		states[i] = NamedKeyState{Name: k.Name, Kind: rec.Kind, Fingerprint: rec.Fingerprint, Expires: now.Add(k.TTL)}
	}
	r.emit(Event{Step: "published", Message: fmt.Sprintf("%d named JWT keys re-minted before they expire", len(due))})
	return states, len(due), nil
}
