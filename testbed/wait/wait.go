// Package wait polls a condition until it holds: the one wait-until loop of the tests and the test bed. Its bound
// is how long a test waits before it calls the thing hung, never an assertion on speed.
package wait

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Abort wraps err so that For returns err at once: there is no use waiting longer (the process exited, say).
func Abort(err error) error { return abortError{err} }

type abortError struct{ err error }

func (a abortError) Error() string { return a.err.Error() }
func (a abortError) Unwrap() error { return a.err }

// Interval is how often Until and For poll.
const Interval = 50 * time.Millisecond

// For calls cond every interval until it reports done, and returns nil then. It returns an error naming what it
// waited for, with cond's last error, when the timeout passes or ctx ends first. An error from cond that is not
// done says why not yet (nil says nothing); one made by Abort ends the wait at once, For returning what it wraps.
func For(ctx context.Context, what string, timeout, interval time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		done, err := cond()
		if done {
			return nil
		}
		var abort abortError
		if errors.As(err, &abort) {
			return abort.err
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("waited %s for %s: %w", timeout, what, err)
			}
			return fmt.Errorf("waited %s for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// Until is For in a test: it polls every Interval and fails the test when cond is not done within timeout (or
// aborts).
func Until(t testing.TB, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	UntilEvery(t, what, timeout, Interval, cond)
}

// UntilEvery is Until polling every interval.
func UntilEvery(t testing.TB, what string, timeout, interval time.Duration, cond func() (bool, error)) {
	t.Helper()
	if err := For(context.Background(), what, timeout, interval, cond); err != nil {
		t.Fatal(err)
	}
}
