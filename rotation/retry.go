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

// Retry is the rotator's one retry loop for nodes and Vault: it calls op with exponential backoff (10 ms growing
// 1.5 times to 250 ms, jittered: a restarting node is polled closely, so a rotation costs little more than its
// restarts) until op succeeds, returns an error marked Permanent, bound passes, or ctx ends; ctx is checked between
// attempts. It returns op's last error.
func Retry(ctx context.Context, bound time.Duration, op func() error) error {
	return retry(ctx, bound, 250*time.Millisecond, op)
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
