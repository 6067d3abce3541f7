package rotation

import (
	"context"
	"time"
)

// What the external tests (package rotation_test) need of the internals: the lease on its own, to test its journal
// writes apart from a rotation.

// Lease is a deployment's lease.
type Lease = lease

// Acquire takes a deployment's lease as Rotate does.
func Acquire(ctx context.Context, store Store, dep, owner string, ttl time.Duration, now func() time.Time) (*Lease, error) {
	return acquire(ctx, store, dep, owner, ttl, now)
}

// Update writes a journal change under the lease, renewing it.
func (l *lease) Update(ctx context.Context, change func(*Journal)) error {
	return l.update(ctx, change)
}

// Release clears the lease's owner.
func (l *lease) Release(ctx context.Context) error { return l.release(ctx) }
