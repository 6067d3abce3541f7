package rotation_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

func TestScheduleParsing(t *testing.T) {
	if _, err := rotation.NewSchedule("d", rotation.ScheduleSpec{Cron: "0 0 3 * * *"}); err == nil || !strings.Contains(err.Error(), "has 6 fields: use standard 5-field cron") {
		t.Errorf("6 fields: %v", err)
	}
	if _, err := rotation.NewSchedule("d", rotation.ScheduleSpec{Cron: "61 * * * *"}); err == nil {
		t.Error("minute 61 accepted")
	}
	if _, err := rotation.NewSchedule("d", rotation.ScheduleSpec{Cron: "0 3 * * *", TimeZone: "Mars/Olympus"}); err == nil || !strings.Contains(err.Error(), "Mars/Olympus") {
		t.Errorf("bad zone: %v", err)
	}
	if _, err := rotation.NewSchedule("d", rotation.ScheduleSpec{}); err == nil {
		t.Error("a schedule with neither cron nor max age was accepted")
	}
	s, err := rotation.NewSchedule("d", rotation.ScheduleSpec{Cron: "30 3 * * 1", TimeZone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) // a Thursday
	want := time.Date(2026, 11, 30, 2, 30, 0, 0, time.UTC) // Monday 03:30 in Berlin (UTC+1)
	if got := s.NextCron(from); !got.Equal(want) {
		t.Errorf("next = %s, want %s", got.UTC(), want)
	}
	j, _ := rotation.NewSchedule("d", rotation.ScheduleSpec{Cron: "0 * * * *", Jitter: 10 * time.Minute})
	a, b := j.NextCron(from), j.NextCron(from)
	if !a.Equal(b) || a.Before(from.Add(time.Hour)) || !a.Before(from.Add(time.Hour+10*time.Minute)) {
		t.Errorf("jittered next %s: want stable, within 10m after 13:00", a)
	}
}

func TestWindows(t *testing.T) {
	night := rotation.Window{Days: []time.Weekday{time.Friday}, Start: 22 * time.Hour, End: 2 * time.Hour}
	s, err := rotation.NewSchedule("d", rotation.ScheduleSpec{MaxAge: time.Hour, Windows: []rotation.Window{night}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"2026-11-27T23:00:00Z": true,  // Friday 23:00
		"2026-11-28T01:30:00Z": true,  // Saturday 01:30, the Friday window after midnight
		"2026-11-28T02:00:00Z": false, // end is exclusive
		"2026-11-26T23:00:00Z": false, // Thursday
		"2026-11-27T21:59:00Z": false,
	}
	for at, want := range cases {
		tm, _ := time.Parse(time.RFC3339, at)
		if got := s.Allowed(tm); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", at, got, want)
		}
	}
}

func TestManagerSingleFlight(t *testing.T) {
	b := newBed(t, 2)
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := rotation.NewManager(ctx, nil, rotation.Hooks{})
	r := b.rotator(func(o *rotation.Options) {
		o.Observe = m.Observer("prod")
		o.Checkpoint = func(p string) {
			if p == "minted" {
				<-release
			}
		}
	})
	m.Add(r, nil)
	id, err := m.Start("prod", rotation.Trigger{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var busy *rotation.BusyError
	if _, err := m.Start("prod", rotation.Trigger{Actor: "test"}); !errors.As(err, &busy) || busy.RunID != id {
		t.Errorf("second start: %v, want busy naming %s", err, id)
	}
	if _, err := m.Start("nope", rotation.Trigger{}); !errors.Is(err, rotation.ErrUnknownDeployment) {
		t.Errorf("unknown: %v", err)
	}
	close(release)
	waitRun(t, m, id, rotation.RunCompleted)
	run, _ := m.Get(id)
	if run.RotationID == "" || len(run.Nodes) != 2 || run.Report == nil || run.Report.Restarts != 4 {
		t.Errorf("run %+v", run)
	}
	if _, err := m.Start("prod", rotation.Trigger{Actor: "test"}); err != nil {
		t.Errorf("the lock was not released after the run: %v", err)
	}
}

func TestScheduleRotatesAnOldKeyOnce(t *testing.T) {
	b := newBed(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := rotation.NewManager(ctx, nil, rotation.Hooks{})
	s, err := rotation.NewSchedule("prod", rotation.ScheduleSpec{MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Add(2 * time.Hour) // the key (published at the bed's start) is now older than its max age
	m.Add(b.rotator(func(o *rotation.Options) { o.Observe = m.Observer("prod") }), &s)
	m.RunSchedules(10 * time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for b.current().Version < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // many more polls: none may rotate again
	if v := b.current().Version; v != 2 {
		t.Errorf("version %d, want exactly one rotation (2)", v)
	}
	cancel()
	m.Wait()
}

func waitRun(t *testing.T, m *rotation.Manager, id string, want rotation.RunState) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if run, _ := m.Get(id); run.State != rotation.RunRunning {
			if run.State != want {
				t.Fatalf("run ended %s (%s), want %s", run.State, run.Error, want)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("run %s did not end", id)
}

// A clock skew between the time Vault stores and ours must not make the max age rotate in a loop.
func TestScheduleMaxAgeIgnoresClockSkew(t *testing.T) {
	b := newBed(t, 2)
	b.store.SinceSkew = -72 * time.Hour // whoever writes the record has a clock three days behind ours
	b.clock.Add(2 * time.Hour)          // the key is older than its max age
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := rotation.NewManager(ctx, nil, rotation.Hooks{})
	s, err := rotation.NewSchedule("prod", rotation.ScheduleSpec{MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(b.rotator(func(o *rotation.Options) { o.Observe = m.Observer("prod") }), &s)
	m.RunSchedules(5 * time.Millisecond)
	waitFor(t, func() bool { return b.current().Version >= 2 })
	time.Sleep(200 * time.Millisecond) // many more polls: none may rotate again
	if v := b.current().Version; v != 2 {
		t.Errorf("version %d, want exactly one rotation (2)", v)
	}
	cancel()
	m.Wait()
}

// A max-age run that cannot act (another rotator holds the lease) is not started again within one poll interval
// plus the ready timeout, so a skewed clock elsewhere cannot make this daemon retry in a loop.
func TestScheduleMaxAgeRunsAtMostOncePerPollAndReadyTimeout(t *testing.T) {
	b := newBed(t, 2)
	b.clock.Add(2 * time.Hour)
	if _, err := b.store.WriteJournal(context.Background(), "prod", rotation.Journal{Phase: rotation.PhaseDone, Owner: "other-daemon", LeaseUntil: b.clock.Now().Add(24 * time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var runs []rotation.RunState
	m := rotation.NewManager(ctx, nil, rotation.Hooks{Finished: func(r rotation.Run) { mu.Lock(); runs = append(runs, r.State); mu.Unlock() }})
	s, err := rotation.NewSchedule("prod", rotation.ScheduleSpec{MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(b.rotator(func(o *rotation.Options) { o.Observe = m.Observer("prod") }), &s)
	m.RunSchedules(5 * time.Millisecond)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(runs) > 0 })
	time.Sleep(200 * time.Millisecond) // many more polls, on a clock that has not moved
	mu.Lock()
	got := slices.Clone(runs)
	mu.Unlock()
	if len(got) != 1 || got[0] != rotation.RunLocked {
		t.Fatalf("runs %v, want exactly one (locked)", got)
	}
	b.clock.Add(5*time.Millisecond + time.Second) // one poll interval plus the ready timeout later: may try again
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(runs) > 1 })
	cancel()
	m.Wait()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNextAllowedHonoursWindows(t *testing.T) {
	night := rotation.Window{Days: []time.Weekday{time.Saturday, time.Sunday}, Start: 2 * time.Hour, End: 5 * time.Hour}
	s, err := rotation.NewSchedule("d", rotation.ScheduleSpec{Cron: "0 12 * * *", Windows: []rotation.Window{night}})
	if err != nil {
		t.Fatal(err)
	}
	at := func(v string) time.Time { tm, _ := time.Parse(time.RFC3339, v); return tm }
	cases := map[string]string{
		"2026-11-26T12:00:00Z": "2026-11-28T02:00:00Z", // Thursday noon: Saturday 02:00
		"2026-11-28T03:00:00Z": "2026-11-28T03:00:00Z", // inside the window: at once
		"2026-11-28T05:00:00Z": "2026-11-29T02:00:00Z", // Saturday after the window: Sunday
		"2026-11-29T06:00:00Z": "2026-12-05T02:00:00Z", // Sunday after the window: next Saturday
	}
	for from, want := range cases {
		if got := s.NextAllowed(at(from)); !got.Equal(at(want)) {
			t.Errorf("NextAllowed(%s) = %s, want %s", from, got.UTC().Format(time.RFC3339), want)
		}
	}
}

// On the days a DST change moves the wall clock, a window is judged by the wall clock, not by time since midnight.
func TestWindowsOnDSTChangeDays(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	w := rotation.Window{Start: 4 * time.Hour, End: 6 * time.Hour}
	s, err := rotation.NewSchedule("d", rotation.ScheduleSpec{MaxAge: time.Hour, TimeZone: "Europe/Berlin", Windows: []rotation.Window{w}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 3, 29, 4, 30, 0, 0, berlin), true},   // spring forward: 4:30 on the wall is 3.5 h after midnight
		{time.Date(2026, 3, 29, 6, 30, 0, 0, berlin), false},  // 5.5 h after midnight, but the wall says 6:30
		{time.Date(2026, 10, 25, 4, 30, 0, 0, berlin), true},  // fall back: 5.5 h after midnight
		{time.Date(2026, 10, 25, 3, 30, 0, 0, berlin), false}, // 4.5 h after midnight, but the wall says 3:30
	}
	for _, c := range cases {
		if got := s.Allowed(c.at); got != c.want {
			t.Errorf("Allowed(%s) = %v, want %v", c.at, got, c.want)
		}
	}
	// The window opens at 04:00 on the wall on both days.
	for _, from := range []time.Time{time.Date(2026, 3, 29, 1, 0, 0, 0, berlin), time.Date(2026, 10, 25, 1, 0, 0, 0, berlin)} {
		want := time.Date(from.Year(), from.Month(), from.Day(), 4, 0, 0, 0, berlin)
		if got := s.NextAllowed(from); !got.Equal(want) {
			t.Errorf("NextAllowed(%s) = %s, want %s", from, got.In(berlin), want)
		}
	}
}
