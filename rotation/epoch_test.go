package rotation_test

import (
	"os"
	"testing"
	"time"
)

// testEpoch is where the tests' clock starts: a fixed instant, or ROTATOR_TEST_EPOCH (RFC 3339) so that `make test`
// can run the time-dependent tests again years ahead and prove none depends on today's date.
func testEpoch(t testing.TB) time.Time {
	t.Helper()
	v := os.Getenv("ROTATOR_TEST_EPOCH")
	if v == "" {
		return time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		t.Fatalf("ROTATOR_TEST_EPOCH %q: %v", v, err)
	}
	return at
}
