package rotation

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule says when a deployment rotates: a standard 5-field cron expression in a time zone, an optional jitter,
// optional allowed windows, and a max age past which the key is rotated at the next allowed moment.
type Schedule struct {
	cron     cron.Schedule
	loc      *time.Location
	jitter   time.Duration
	windows  []Window
	maxAge   time.Duration
	jitterID uint64
}

// Window is a time of day range on some weekdays in which rotations may start ("02:00"-"05:00"; End before Start
// spans midnight).
type Window struct {
	Days       []time.Weekday // empty: every day
	Start, End time.Duration  // offsets from midnight
}

// ScheduleSpec is a schedule as written in the config.
type ScheduleSpec struct {
	Cron     string        // 5 fields: minute hour day-of-month month day-of-week ("" = none, max age only)
	TimeZone string        // IANA name; "" = UTC
	Jitter   time.Duration // each run starts up to this much later (stable per deployment)
	Windows  []Window
	MaxAge   time.Duration
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// NewSchedule checks and compiles a spec for deployment (whose name keys the jitter, so each deployment has its own
// stable offset). A 6-field (seconds) expression is refused.
func NewSchedule(deployment string, s ScheduleSpec) (Schedule, error) {
	var out Schedule
	if s.Cron != "" {
		if n := len(strings.Fields(s.Cron)); n != 5 && !strings.HasPrefix(s.Cron, "@") {
			return out, fmt.Errorf("schedule %q has %d fields: use standard 5-field cron (minute hour day-of-month month day-of-week); a seconds field is not accepted", s.Cron, n)
		}
		c, err := cronParser.Parse(s.Cron)
		if err != nil {
			return out, fmt.Errorf("schedule %q: %w", s.Cron, err)
		}
		out.cron = c
	}
	out.loc = time.UTC
	if s.TimeZone != "" {
		loc, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			return out, fmt.Errorf("time zone %q: %w", s.TimeZone, err)
		}
		out.loc = loc
	}
	if s.Jitter < 0 || s.MaxAge < 0 {
		return out, fmt.Errorf("jitter and max age must not be negative")
	}
	if out.cron == nil && s.MaxAge == 0 {
		return out, fmt.Errorf("a schedule needs a cron expression, a max age, or both")
	}
	for i, w := range s.Windows {
		if w.Start < 0 || w.Start >= 24*time.Hour || w.End < 0 || w.End > 24*time.Hour || w.Start == w.End {
			return out, fmt.Errorf("window %d: start and end must be distinct times of day", i)
		}
	}
	h := fnv.New64a()
	h.Write([]byte(deployment))
	out.jitter, out.windows, out.maxAge, out.jitterID = s.Jitter, s.Windows, s.MaxAge, h.Sum64()
	return out, nil
}

// NextCron is the first cron time after t, plus the deployment's jitter; zero without a cron expression.
func (s Schedule) NextCron(t time.Time) time.Time {
	if s.cron == nil {
		return time.Time{}
	}
	next := s.cron.Next(t.In(s.loc))
	if s.jitter > 0 {
		next = next.Add(time.Duration((s.jitterID ^ uint64(next.Unix())) % uint64(s.jitter)))
	}
	return next
}

// MaxAge is the age past which a key is due regardless of the cron expression (0: none).
func (s Schedule) MaxAge() time.Duration { return s.maxAge }

// Allowed says whether a rotation may start at t.
func (s Schedule) Allowed(t time.Time) bool {
	if len(s.windows) == 0 {
		return true
	}
	t = t.In(s.loc)
	for _, w := range s.windows {
		if w.contains(t) {
			return true
		}
	}
	return false
}

// NextAllowed is the first moment at or after t at which a rotation may start: t itself without windows or inside
// one, else the start of the next window (as the zone's wall clock reads it; a window whose start a DST change
// skips begins when the clock jumps into it). Zero if no window ever opens.
func (s Schedule) NextAllowed(t time.Time) time.Time {
	if s.Allowed(t) {
		return t
	}
	lt := t.In(s.loc)
	for d := 0; d <= 8; d++ {
		var best time.Time
		for _, w := range s.windows {
			h, m, sec := int(w.Start/time.Hour), int(w.Start%time.Hour/time.Minute), int(w.Start%time.Minute/time.Second)
			start := time.Date(lt.Year(), lt.Month(), lt.Day()+d, h, m, sec, 0, s.loc)
			if start.After(t) && s.Allowed(start) && (best.IsZero() || start.Before(best)) {
				best = start
			}
		}
		if !best.IsZero() {
			return best
		}
	}
	return time.Time{}
}

func (w Window) contains(t time.Time) bool {
	h, m, sec := t.Clock()
	// The wall clock's time of day, not the time elapsed since midnight: they differ on the days DST changes.
	off := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	day := t.Weekday()
	if w.End < w.Start && off < w.End { // the part after midnight belongs to the window that began the day before
		day = (day + 6) % 7
		off += 24 * time.Hour
	}
	end := w.End
	if end < w.Start {
		end += 24 * time.Hour
	}
	if off < w.Start || off >= end {
		return false
	}
	if len(w.Days) == 0 {
		return true
	}
	for _, d := range w.Days {
		if d == day {
			return true
		}
	}
	return false
}
