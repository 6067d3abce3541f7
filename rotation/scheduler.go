package rotation

import (
	"errors"
	"time"
)

// RunSchedules starts, for every deployment added with a schedule, a loop that rotates it when due: at its cron
// times (plus jitter, deferred to the next allowed window), when its key is older than the max age (at the next
// allowed moment), and at once when the journal holds an interrupted rotation whose lease has expired (another
// daemon died holding it). After a failed run here, the max age and the journal wait a backoff from 10 minutes
// doubling to 6 hours, so a failing node is not restarted every poll. Starting the
// daemon rotates nothing unless something is due. Each loop looks at Vault every poll interval.
func (m *Manager) RunSchedules(poll time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.poll = poll
	for name, d := range m.deps {
		m.wg.Add(1)
		go m.scheduleLoop(name, d, poll)
	}
}

func (m *Manager) scheduleLoop(name string, d *managed, poll time.Duration) {
	defer m.wg.Done()
	var next time.Time
	if d.schedule != nil {
		next = d.schedule.NextCron(d.now())
	}
	pending := false // a cron time passed outside the allowed windows
	for {
		m.mu.Lock()
		switch {
		case pending: // a cron time passed outside the windows: the next allowed moment
			d.nextRun = d.schedule.NextAllowed(d.now())
		case !next.IsZero():
			d.nextRun = d.schedule.NextAllowed(next)
		default:
			d.nextRun = next
		}
		m.mu.Unlock()
		wait := poll
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(d.now()), 0))
		}
		select {
		case <-m.ctx.Done():
			return
		case <-d.rot.opt.Clock.After(wait):
		}
		m.checkOpen(name, d)
		now := d.now()
		if !next.IsZero() && !now.Before(next) {
			pending, next = true, d.schedule.NextCron(now)
		}
		if m.busy(d) { // a run of it is queued or running and does the same job: nothing to read from Vault
			pending = false
			continue
		}
		reason := m.due(name, d, now, pending)
		if reason == "" {
			m.refreshKeys(name, d)
			continue
		}
		id, err := m.Start(name, Trigger{Actor: "schedule"})
		if err == nil && reason == reasonMaxAge {
			m.mu.Lock()
			d.maxAgeAt = now
			m.mu.Unlock()
		}
		switch {
		case err == nil:
			m.logger.Info("scheduled rotation started", "deployment", name, "run_id", id, "reason", reason)
			pending = false
		case errors.Is(err, ErrBusy):
			pending = false // the run in flight does the same job
		default:
			m.logger.Warn("scheduled rotation not started", "deployment", name, "error", err)
		}
	}
}

// refreshKeys re-mints the deployment's JWT named keys that are near expiry, unless a run of it is in flight (that
// run re-mints them), and keeps their states for the API and metrics. The states it keeps decide whether to look at
// the store at all: an expiry only moves later (a re-mint, here or elsewhere), so while none of them is due an idle
// poll reads nothing; after a run here, they are read again.
func (m *Manager) refreshKeys(name string, d *managed) {
	if !d.rot.usesJWTKeys() {
		return
	}
	m.mu.Lock()
	if d.running != "" || (d.keys != nil && len(d.rot.dueKeys(d.keys)) == 0) {
		m.mu.Unlock()
		return
	}
	d.running = refreshRunID
	m.mu.Unlock()
	states, n, err := d.rot.RefreshNamedKeys(m.ctx)
	m.mu.Lock()
	d.running = ""
	if len(states) > 0 {
		d.keys = states
	}
	m.mu.Unlock()
	switch {
	case errors.Is(err, ErrLocked):
	case err != nil:
		m.logger.Warn("named keys near expiry could not be re-minted; will try again", "deployment", name, "error", err)
	case n > 0:
		m.logger.Info("named keys re-minted before they expire", "deployment", name, "keys", n)
	}
}

// busy says whether the deployment's single flight is held (a run queued or running).
func (m *Manager) busy(d *managed) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return d.running != ""
}

// checkOpen probes the deployment's nodes with a key never issued, unless a run of it is in flight (the run checks
// every node it touches), and keeps the result for the API and metrics.
func (m *Manager) checkOpen(name string, d *managed) {
	if m.busy(d) {
		return
	}
	open := d.rot.OpenNodes(m.ctx)
	for node, isOpen := range open {
		if isOpen {
			m.logger.Error("node is open: it accepts a key that was never issued, so it serves every request; run verify for the likely cause", "deployment", name, "node", node)
		}
	}
	m.mu.Lock()
	d.open = open
	m.mu.Unlock()
}

// refreshRunID holds a deployment's single-flight slot while its named keys are re-minted.
const refreshRunID = "named-key-refresh"

// due says why the deployment should rotate now ("" = it should not).
func (m *Manager) due(name string, d *managed, now time.Time, pending bool) string {
	st, err := d.rot.Status(m.ctx)
	if err != nil {
		m.logger.Warn("cannot read the deployment's state; will look again", "deployment", name, "error", err)
		return ""
	}
	m.mu.Lock()
	retryAt := d.retryAt // after a failed run here: the backoff before trying again
	maxAgeAt, fresh, freshAt := d.maxAgeAt, d.fresh, d.freshAt
	m.mu.Unlock()
	if !st.LastPhase.Final() && st.LockedBy == "" && !now.Before(retryAt) {
		return "an interrupted rotation waits in the journal"
	}
	if d.schedule == nil || !d.schedule.Allowed(now) {
		return ""
	}
	if pending {
		return "scheduled time"
	}
	maxAge := d.schedule.MaxAge()
	if maxAge <= 0 || st.Version == 0 || now.Before(retryAt) {
		return ""
	}
	since := st.Since
	if st.Version == fresh && freshAt.After(since) {
		since = freshAt // a run here made this version current: our own clock says when, whatever Vault stored
	}
	if now.Sub(since) <= maxAge {
		return ""
	}
	// Never twice within one poll interval plus the time a run may take: a skewed clock cannot make a loop.
	if !maxAgeAt.IsZero() && now.Sub(maxAgeAt) < m.poll+d.rot.opt.ReadyTimeout {
		m.logger.Warn("the key still looks older than its max age right after a max-age rotation; the clocks of Vault's writers and this daemon may disagree", "deployment", name)
		return ""
	}
	return reasonMaxAge
}

const reasonMaxAge = "the key is older than its max age"
