package rotation

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Permanent marks an error that retrying cannot fix (a rejected key, a stopped node, a policy refusal): Retry
// returns it at once.
func Permanent(err error) error { return backoff.Permanent(err) }

// Retry is the rotator's retry loop for Vault: it calls op with exponential backoff (10 ms growing 1.5 times to
// 250 ms, jittered) until op succeeds, returns an error marked Permanent, bound passes, or ctx ends; ctx is checked
// between attempts. It returns op's last error. Poll and RetrySlowly are the same loop with other ceilings.
func Retry(ctx context.Context, bound time.Duration, op func() error) error {
	return retry(ctx, bound, 250*time.Millisecond, op)
}

// Poll is Retry for waiting on nodes (a restarted node to accept a key, a cluster to settle): the interval grows
// only to 50 ms, so a wait ends within about 50 ms of the node being ready, as closely as a bare restart script
// polling every 20 ms would; each attempt is a few GETs to a node the rotator is restarting anyway.
func Poll(ctx context.Context, bound time.Duration, op func() error) error {
	return retry(ctx, bound, 50*time.Millisecond, op)
}

// RetrySlowly is Retry for remote receivers that should not be hammered (webhooks): the interval grows to 30 s.
func RetrySlowly(ctx context.Context, bound time.Duration, op func() error) error {
	return retry(ctx, bound, 30*time.Second, op)
}

func retry(ctx context.Context, bound, maxInterval time.Duration, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 10 * time.Millisecond
	b.Multiplier = 1.5
	b.MaxInterval = maxInterval
	b.MaxElapsedTime = bound
	err := backoff.Retry(op, backoff.WithContext(b, ctx))
	var p *backoff.PermanentError
	if errors.As(err, &p) {
		return p.Err
	}
	return err
}
