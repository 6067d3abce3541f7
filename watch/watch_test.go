package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time                       { return c.now }
func (c *fakeClock) After(time.Duration) <-chan time.Time { return make(chan time.Time) }

// fakeNode is an audit log: entries appear in it at their time plus delay (Qdrant's writer lags), and a call
// answers like POST /audit/logs (the range, the filters, newest first, the limit), or err.
type fakeNode struct {
	name    string
	clock   *fakeClock
	entries []Entry
	delay   time.Duration
	err     error
	calls   int
	keys    []rotation.Key
}

func (n *fakeNode) Name() string { return n.name }

func (n *fakeNode) AuditLog(_ context.Context, k rotation.Key, from, to time.Time, limit int, filters map[string]string) ([]Entry, error) {
	n.calls++
	n.keys = append(n.keys, k)
	if n.err != nil {
		return nil, n.err
	}
	var out []Entry
	for _, e := range n.entries {
		visible := !e.Time.Add(n.delay).After(n.clock.now)
		if visible && !e.Time.Before(from) && e.Time.Before(to) && (filters["result"] == "" || filters["result"] == e.Result) {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return b.Time.Compare(a.Time) })
	return out[:min(len(out), limit)], nil
}

func (n *fakeNode) deny(at time.Time, addr, msg string) {
	n.entries = append(n.entries, Entry{Time: at, API: "/collections", AuthType: "None", Remote: addr, Result: "denied", Error: msg})
}

const invalidKey = "Unauthorized: Invalid API key or JWT"

type fakeKeys struct{ key rotation.Key }

func (k fakeKeys) ReadCurrent(context.Context, string, rotation.Slot) (rotation.KeyRecord, error) {
	return rotation.KeyRecord{Key: k.key}, nil
}

type recorder struct {
	denied     map[string]int
	bursts     []Burst
	stragglers [][]Straggler
}

func setup(t *testing.T, opt Options, cluster bool, nodes ...*fakeNode) (*Watcher, *recorder, *fakeClock, *bytes.Buffer) {
	t.Helper()
	clock := &fakeClock{now: t0}
	key, err := rotation.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{denied: map[string]int{}}
	var logs bytes.Buffer
	opt.Keys, opt.Clock, opt.Logger = fakeKeys{key}, clock, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opt.Denied = func(dep, node string, n int) { rec.denied[dep+"/"+node] += n }
	opt.Burst = func(b Burst) { rec.bursts = append(rec.bursts, b) }
	opt.Stragglers = func(_ string, _ Promotion, list []Straggler, _ time.Time) {
		rec.stragglers = append(rec.stragglers, list)
	}
	var srcs []AuditSource
	for _, n := range nodes {
		n.clock = clock
		srcs = append(srcs, n)
	}
	w := New(opt, []Target{{Deployment: "prod", Nodes: srcs, Cluster: cluster}})
	t.Cleanup(func() {
		if strings.Contains(logs.String(), key.Reveal()) {
			t.Error("the admin key appears in the watcher's log")
		}
	})
	return w, rec, clock, &logs
}

// TestIncremental: each entry is counted once across polls that overlap, identical entries as many times as they
// occur, entries that appear late (the writer lags) are still counted, and nothing before the first poll's look-back.
func TestIncremental(t *testing.T) {
	n := &fakeNode{name: "a", delay: 1500 * time.Millisecond}
	w, rec, clock, _ := setup(t, Options{Lag: 2 * time.Second, Overlap: time.Minute}, false, n)
	n.deny(t0.Add(-2*time.Hour), "10.0.0.9", invalidKey) // before the watcher: not counted
	ctx := context.Background()
	w.Poll(ctx)
	for i := 1; i <= 10; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		n.deny(at, "10.0.0.1", invalidKey)
		n.deny(at, "10.0.0.1", invalidKey) // the same request twice in one instant: two entries
		n.entries = append(n.entries, Entry{Time: at, Remote: "10.0.0.2", Result: "ok"})
		clock.now = at.Add(500 * time.Millisecond)
		w.Poll(ctx)
	}
	clock.now = t0.Add(30 * time.Second)
	w.Poll(ctx)
	w.Poll(ctx)
	if got := rec.denied["prod/a"]; got != 20 {
		t.Errorf("denied %d, want 20", got)
	}
	v, _ := w.View("prod")
	if want := []AddressCount{{Node: "a", Address: "10.0.0.1", Denied: 20}}; !slices.Equal(v.Denied, want) {
		t.Errorf("by address %+v, want %+v", v.Denied, want)
	}
}

// TestPaging: a poll that finds more than one call's limit reads the older pages too.
func TestPaging(t *testing.T) {
	n := &fakeNode{name: "a"}
	w, rec, clock, _ := setup(t, Options{Limit: 7}, false, n)
	w.Poll(context.Background())
	for i := 0; i < 50; i++ {
		n.deny(t0.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("10.0.1.%d", i%3), invalidKey)
	}
	clock.now = t0.Add(10 * time.Second)
	w.Poll(context.Background())
	if rec.denied["prod/a"] != 50 {
		t.Errorf("denied %d, want 50", rec.denied["prod/a"])
	}
}

// TestBurst: an address refused more than the threshold within the window alerts once, not again while it goes on,
// and again after it fell back under; refusals spread wider than the window never alert.
func TestBurst(t *testing.T) {
	n := &fakeNode{name: "a"}
	w, rec, clock, _ := setup(t, Options{Threshold: 5, Window: time.Minute}, false, n)
	ctx := context.Background()
	w.Poll(ctx)
	for i := 0; i < 20; i++ { // slow: one every 20s, 3 per minute
		n.deny(t0.Add(time.Duration(i)*20*time.Second), "10.0.0.5", invalidKey)
	}
	base := t0.Add(10 * time.Minute)
	for i := 0; i < 12; i++ { // fast: 12 within 12 s
		n.deny(base.Add(time.Duration(i)*time.Second), "10.0.0.6", "Unauthorized: Must provide an API key or an Authorization bearer token")
	}
	clock.now = base.Add(time.Minute)
	w.Poll(ctx)
	if len(rec.bursts) != 1 || rec.bursts[0].Address != "10.0.0.6" || rec.bursts[0].Count != 6 || rec.bursts[0].Node != "a" {
		t.Fatalf("bursts %+v, want one for 10.0.0.6 with count 6", rec.bursts)
	}
	later := base.Add(5 * time.Minute) // the window emptied: a new burst alerts again
	for i := 0; i < 6; i++ {
		n.deny(later.Add(time.Duration(i)*time.Second), "10.0.0.6", invalidKey)
	}
	clock.now = later.Add(time.Minute)
	w.Poll(ctx)
	if len(rec.bursts) != 2 {
		t.Errorf("bursts %+v, want a second one", rec.bursts)
	}
}

// TestStragglers: after a promotion, the addresses refused for a wrong key since then are stragglers (refusals
// read before the promotion was noted included, and those before it, or without a key, not); the set is announced
// when it changes, and counted anew at the next promotion.
func TestStragglers(t *testing.T) {
	n := &fakeNode{name: "a"}
	m := &fakeNode{name: "b"}
	w, rec, clock, _ := setup(t, Options{}, false, n, m)
	ctx := context.Background()
	w.Poll(ctx)
	promoted := t0.Add(time.Minute)
	n.deny(promoted.Add(-time.Second), "10.0.0.1", invalidKey) // before the promotion
	n.deny(promoted.Add(time.Second), "10.0.0.2", invalidKey)
	m.deny(promoted.Add(2*time.Second), "10.0.0.3", "Unauthorized: Must provide an API key or an Authorization bearer token")
	clock.now = promoted.Add(10 * time.Second)
	w.Poll(ctx) // read before the run's end is noted
	if len(rec.stragglers) != 0 {
		t.Fatalf("stragglers announced before any promotion: %+v", rec.stragglers)
	}
	w.Promoted("prod", "run-1", promoted)
	want := []Straggler{{Address: "10.0.0.2", Node: "a", Denied: 1, LastSeen: promoted.Add(time.Second)}}
	if len(rec.stragglers) != 1 || !slices.Equal(rec.stragglers[0], want) {
		t.Fatalf("stragglers %+v, want %+v", rec.stragglers, want)
	}
	n.deny(promoted.Add(20*time.Second), "10.0.0.2", invalidKey) // same set: no new announcement
	clock.now = promoted.Add(30 * time.Second)
	w.Poll(ctx)
	m.deny(promoted.Add(40*time.Second), "10.0.0.4", invalidKey)
	clock.now = promoted.Add(50 * time.Second)
	w.Poll(ctx)
	if len(rec.stragglers) != 2 || len(rec.stragglers[1]) != 2 {
		t.Fatalf("announcements %+v, want a second one with two stragglers", rec.stragglers)
	}
	if got, ok := w.StragglersOf("prod", "run-1"); !ok || len(got) != 2 || got[0].Denied != 2 || Addresses(got) != 2 {
		t.Errorf("StragglersOf run-1: %+v %v", got, ok)
	}
	if _, ok := w.StragglersOf("prod", "run-0"); ok {
		t.Error("StragglersOf an older run")
	}
	w.Promoted("prod", "run-2", promoted.Add(time.Hour))
	if v, _ := w.View("prod"); len(v.Stragglers) != 0 || v.Promotion.RunID != "run-2" {
		t.Errorf("after the next promotion: %+v", v)
	}
	if len(rec.stragglers) != 3 || len(rec.stragglers[2]) != 0 {
		t.Errorf("announcements %+v, want a third one, empty", rec.stragglers)
	}
	w.Promoted("prod", "run-3", promoted.Add(2*time.Hour))
	if len(rec.stragglers) != 3 {
		t.Errorf("a promotion without stragglers after one without was announced: %+v", rec.stragglers)
	}
}

// TestAuditOffAndPeerDown: an audit log that is off is logged once and shown; a read failing (a cluster peer
// down) alarms nothing and the next poll reads from where the last good one stood; a cluster is read through one
// node, under the node label "cluster"; the rotator's own requests are left out.
func TestAuditOffAndPeerDown(t *testing.T) {
	off := &fakeNode{name: "a", err: fmt.Errorf("node a: %w", ErrAuditOff)}
	w, _, _, logs := setup(t, Options{}, false, off)
	for range 3 {
		w.Poll(context.Background())
	}
	if c := strings.Count(logs.String(), "audit log is off"); c != 1 {
		t.Errorf("audit log off logged %d times, want once:\n%s", c, logs)
	}
	if v, _ := w.View("prod"); !slices.Equal(v.AuditOff, []string{"a"}) {
		t.Errorf("audit_log_off %v", v.AuditOff)
	}

	a, b := &fakeNode{name: "a"}, &fakeNode{name: "b"}
	w, rec, clock, logs := setup(t, Options{Ignore: func(e Entry) bool { return e.TracingID == "self" }}, true, a, b)
	ctx := context.Background()
	w.Poll(ctx)
	a.deny(t0.Add(time.Second), "10.0.0.1", invalidKey)
	a.entries = append(a.entries, Entry{Time: t0.Add(time.Second), Remote: "10.0.0.1", Result: "denied", Error: invalidKey, TracingID: "self"})
	a.err = errors.New("HTTP 500: Failed to fetch audit logs from peer 2")
	b.err = a.err
	clock.now = t0.Add(10 * time.Second)
	w.Poll(ctx)
	if rec.denied["prod/cluster"] != 0 || strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("a failed read counted %v or alarmed:\n%s", rec.denied, logs)
	}
	a.err, b.err = nil, nil
	clock.now = t0.Add(20 * time.Second)
	w.Poll(ctx)
	if rec.denied["prod/cluster"] != 1 || b.calls != 1 {
		t.Errorf("after the peer is back: denied %v, calls to b %d (want 1: one node answers for the cluster)", rec.denied, b.calls)
	}
}

// TestPromotionOf: a completed run dropped the old key at its first promoting (or cutting) event; a rolled-back
// run or a dry run promoted nothing.
func TestPromotionOf(t *testing.T) {
	run := rotation.Run{ID: "r", State: rotation.RunCompleted, Finished: t0.Add(time.Hour), Events: []rotation.Event{
		{Time: t0, Phase: rotation.PhaseStaging}, {Time: t0.Add(2 * time.Minute), Phase: rotation.PhasePromoting},
		{Time: t0.Add(time.Minute), Phase: rotation.PhasePromoting}, {Time: t0.Add(3 * time.Minute), Phase: rotation.PhaseRetiring}}}
	if p, ok := PromotionOf(run); !ok || p.RunID != "r" || !p.At.Equal(t0.Add(time.Minute)) {
		t.Errorf("PromotionOf: %+v %v, want run r at %s", p, ok, t0.Add(time.Minute))
	}
	for _, r := range []rotation.Run{{State: rotation.RunRolledBack}, {State: rotation.RunCompleted, DryRun: true}} {
		if _, ok := PromotionOf(r); ok {
			t.Errorf("PromotionOf(%s, dry run %v) found a promotion", r.State, r.DryRun)
		}
	}
}
