package config

import (
	"fmt"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// minScheduleInterval is the shortest time allowed between two scheduled rotations: each one restarts every node
// twice, and "@every 0s" would rotate back to back.
const minScheduleInterval = time.Minute

// ScheduleSpec is the deployment's schedule as the daemon compiles it (rotation.NewSchedule); ok is false when the
// deployment has none (no schedule and no max_age). The windows must have passed Validate.
func (d Deployment) ScheduleSpec() (spec rotation.ScheduleSpec, ok bool) {
	if d.Schedule == "" && d.MaxAge <= 0 {
		return spec, false
	}
	spec = rotation.ScheduleSpec{Cron: d.Schedule, TimeZone: d.TimeZone, Jitter: d.Jitter.Std(), MaxAge: d.MaxAge.Std()}
	for _, w := range d.Windows {
		days, span, _ := w.Parse()
		spec.Windows = append(spec.Windows, rotation.Window{Days: days, Start: span[0], End: span[1]})
	}
	return spec, true
}

// checkSchedule checks the fields the domain's message would not name (time zone, jitter, max age, windows), then
// compiles the schedule exactly as the daemon does (rotation.NewSchedule, which judges the cron expression), so a
// file `rotator check` accepts is one the daemon can schedule.
func checkSchedule(bad reporter, f string, d Deployment) {
	ok := true
	if d.TimeZone != "" {
		if _, err := time.LoadLocation(d.TimeZone); err != nil {
			bad(f+".timezone", "%q is not a time zone", d.TimeZone)
			ok = false
		}
	}
	if d.Jitter < 0 {
		bad(f+".jitter", "%s is negative", d.Jitter.Std())
		ok = false
	}
	if d.MaxAge < 0 {
		bad(f+".max_age", "%s is negative", d.MaxAge.Std())
		ok = false
	}
	for j, w := range d.Windows {
		if _, _, err := w.Parse(); err != nil {
			bad(fmt.Sprintf("%s.windows[%d]", f, j), "%v", err)
			ok = false
		}
	}
	spec, has := d.ScheduleSpec()
	if !ok || !has {
		return
	}
	if _, err := rotation.NewSchedule(d.Name, spec); err != nil {
		bad(f+".schedule", "%v", err)
		return
	}
	if gap, ok := shortestGap(spec); ok && gap < minScheduleInterval {
		bad(f+".schedule", "%q fires every %s; scheduled rotations must be at least %s apart", d.Schedule, gap, minScheduleInterval)
	}
}

// shortestGap is the shortest time between the cron expression's firings, from a fixed instant (not the clock) and
// without the jitter; ok is false without a cron expression or when it stops firing.
func shortestGap(spec rotation.ScheduleSpec) (gap time.Duration, ok bool) {
	if spec.Cron == "" {
		return 0, false
	}
	s, err := rotation.NewSchedule("", rotation.ScheduleSpec{Cron: spec.Cron, TimeZone: spec.TimeZone})
	if err != nil {
		return 0, false
	}
	at := time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)
	gap = -1
	for range 4 {
		next := s.NextCron(at)
		if next.IsZero() {
			return 0, false
		}
		if g := next.Sub(at); gap < 0 || g < gap {
			gap = g
		}
		at = next
	}
	return gap, true
}
