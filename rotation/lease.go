package rotation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrLocked: another rotator holds the deployment's lease.
var ErrLocked = errors.New("locked by another rotator")

// ErrLeaseLost: a journal write found that another rotator took the lease; the holder must stop at once.
var ErrLeaseLost = errors.New("lease lost to another rotator")

// LockedError says who holds a deployment's lease and until when.
type LockedError struct {
	Deployment string
	Owner      string
	Until      time.Time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("deployment %s is locked by another rotator (%s) until %s", e.Deployment, e.Owner, e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// lease is a deployment's lock, folded into its journal: acquiring it is a check-and-set write of the journal, and
// every later journal write is a check-and-set against the version this holder last wrote, so a holder that lost the
// lease (it expired and another rotator took it) fails its next write instead of acting on stale state.
type lease struct {
	store Store
	dep   string
	owner string
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	j       Journal
	version int
	lost    bool
	// noted are changes that record progress only (a node done, a phase ended), made to the journal by the next
	// write instead of a write of their own: every side effect is preceded by a write (a fence), which carries them,
	// and a crash that loses them only repeats checks a rerun finds already done.
	noted []func(*Journal)
	// wrote is when the last successful write was sent, on this process's monotonic clock (zero: none yet).
	wrote time.Time
	// released: the lease was cleared by a write (the run's last); later writes and renewals do nothing.
	released bool
	// unsure is the write id of this holder's last write whose outcome it does not know (the call failed or was
	// cancelled after it may have reached the store): a later conflict caused by that very write is not a lost lease.
	unsure string
}

func acquire(ctx context.Context, store Store, dep, owner string, ttl time.Duration, now func() time.Time) (*lease, error) {
	j, version, err := store.ReadJournal(ctx, dep)
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	if j.Owner != "" && j.Owner != owner && now().Before(j.LeaseUntil) {
		return nil, &LockedError{Deployment: dep, Owner: j.Owner, Until: j.LeaseUntil}
	}
	l := &lease{store: store, dep: dep, owner: owner, ttl: ttl, now: now, j: j, version: version}
	err = l.update(ctx, func(j *Journal) { j.Owner = owner })
	if errors.Is(err, ErrLeaseLost) {
		// Another rotator wrote the journal between our read and our write.
		j, _, rerr := store.ReadJournal(ctx, dep)
		if rerr != nil {
			return nil, fmt.Errorf("read journal: %w", rerr)
		}
		return nil, &LockedError{Deployment: dep, Owner: j.Owner, Until: j.LeaseUntil}
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// journal returns a copy of the journal as last written, with the changes noted since.
func (l *lease) journal() Journal {
	l.mu.Lock()
	defer l.mu.Unlock()
	j := l.j
	j.NodesDone = slices.Clone(j.NodesDone)
	for _, change := range l.noted {
		change(&j)
	}
	return j
}

// note records a change that the next write makes (see lease.noted).
func (l *lease) note(change func(*Journal)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noted = append(l.noted, change)
}

// pending says whether noted changes wait for a write.
func (l *lease) pending() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.noted) > 0
}

// sinceWrite is how long ago the last successful write was sent (monotonic clock), and whether the lease is
// released.
func (l *lease) sinceWrite() (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Since(l.wrote), l.released
}

// update applies change to a copy of the journal, renews the lease, and writes it with check-and-set. A write that
// Vault applied but whose answer was lost (the client then retries and meets its own version) is recognised by the
// write's unique OpID and counts as done.
func (l *lease) update(ctx context.Context, change func(*Journal)) error {
	return l.write(ctx, change, true, newID())
}

// release clears the owner so the next rotator need not wait for the lease to expire (unless the run's last write
// did).
func (l *lease) release(ctx context.Context) error {
	return l.write(ctx, func(*Journal) {}, false, newID())
}

// write applies the noted changes and change, and writes the journal under the write id opID (the same id for
// retries of one change). Once a write released the lease, writing fails with ErrLeaseLost (a release does nothing).
func (l *lease) write(ctx context.Context, change func(*Journal), hold bool, opID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released && !hold {
		return nil
	}
	if l.lost || l.released {
		return ErrLeaseLost
	}
	noted, own := l.noted, change
	change = func(j *Journal) {
		for _, c := range noted {
			c(j)
		}
		own(j)
	}
	sent := time.Now()
	j := l.next(l.j, change, hold, opID)
	version, err := l.store.WriteJournal(ctx, l.dep, j, l.version)
	if errors.Is(err, ErrConflict) {
		stored, storedVersion, rerr := l.store.ReadJournal(ctx, l.dep)
		switch {
		case rerr == nil && stored.OpID == j.OpID:
			version, err = storedVersion, nil
		case rerr == nil && l.unsure != "" && stored.OpID == l.unsure && stored.Owner == l.owner:
			// Our own earlier write landed after all: take it as the base and write this change on top of it.
			l.j, l.version, l.unsure = stored, storedVersion, ""
			j = l.next(stored, change, hold, opID)
			version, err = l.store.WriteJournal(ctx, l.dep, j, l.version)
			if errors.Is(err, ErrConflict) {
				l.lost = true
				return fmt.Errorf("write journal: %w", ErrLeaseLost)
			}
		default:
			l.lost = true
			return fmt.Errorf("write journal: %w", ErrLeaseLost)
		}
	}
	if err != nil {
		l.unsure = opID
		return fmt.Errorf("write journal: %w", err)
	}
	l.j, l.version, l.unsure, l.noted, l.wrote, l.released = j, version, "", nil, sent, !hold
	return nil
}

// next is base with change applied and the lease stamped: renewed when hold, cleared otherwise.
func (l *lease) next(base Journal, change func(*Journal), hold bool, opID string) Journal {
	j := base
	j.NodesDone = slices.Clone(base.NodesDone)
	change(&j)
	now := l.now()
	j.Owner, j.LeaseUntil, j.UpdatedAt, j.OpID = l.owner, now.Add(l.ttl), now, opID
	if !hold {
		j.Owner, j.LeaseUntil = "", time.Time{}
	}
	return j
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
