package wait

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestFor: For returns once the condition holds (whatever it says of why it did not before), returns at once what
// it aborts with, and otherwise names what it waited for and the condition's last reason.
func TestFor(t *testing.T) {
	n := 0
	if err := For(context.Background(), "the third poll", time.Minute, time.Millisecond, func() (bool, error) {
		n++
		return n == 3, nil
	}); err != nil || n != 3 {
		t.Fatalf("For returned %v after %d polls, want nil after 3", err, n)
	}
	err := For(context.Background(), "a condition that never holds", time.Millisecond, time.Millisecond, func() (bool, error) {
		return false, errors.New("still 503")
	})
	if err == nil || !strings.Contains(err.Error(), "a condition that never holds") || !strings.Contains(err.Error(), "still 503") {
		t.Fatalf("For returned %v, want it to name the condition and its last reason", err)
	}
	if err := For(context.Background(), "done", time.Minute, time.Millisecond, func() (bool, error) {
		return true, errors.New("why it was not done before")
	}); err != nil {
		t.Fatalf("For returned %v once done", err)
	}
	exited := errors.New("the node exited")
	if err := For(context.Background(), "a node", time.Minute, time.Millisecond, func() (bool, error) {
		return false, Abort(exited)
	}); err != exited {
		t.Fatalf("For returned %v, want the aborting error itself", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := For(ctx, "a cancelled wait", time.Minute, time.Millisecond, func() (bool, error) { return false, nil }); err == nil {
		t.Fatal("For did not end with its context")
	}
}
