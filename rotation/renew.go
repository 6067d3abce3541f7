package rotation

import (
	"context"
	"errors"
	"sync"
	"time"
)

// keepRenewed renews l every third of its TTL from now on. It returns a context that losing the lease cancels (with
// ErrLeaseLost as its cause), and release, which stops the renewal and then releases the lease unless err says it
// was lost, joining a failed release to err. The lease is renewed until release is called (when Rotate returns),
// not until a stop is requested: a node step begun before a SIGTERM finishes under the lease.
func (r *Rotator) keepRenewed(ctx context.Context, l *lease) (context.Context, func(err error) error) {
	renewCtx, stopRenewing := context.WithCancel(context.WithoutCancel(ctx))
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.renew(renewCtx, l, cancel) }()
	release := func(err error) error {
		stopRenewing()
		cancel(nil)
		wg.Wait()
		if errors.Is(err, ErrLeaseLost) {
			return err // the lease is someone else's now
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer rcancel()
		if rerr := l.release(rctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	return ctx, release
}

// renew renews l once a third of its TTL has passed since its last write (every journal write renews it: a rotation
// busy with its nodes needs no renewal of its own) until ctx ends; losing the lease calls cancel with ErrLeaseLost.
func (r *Rotator) renew(ctx context.Context, l *lease, cancel context.CancelCauseFunc) {
	every := r.opt.LeaseTTL / 3
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			since, released := l.sinceWrite()
			if released {
				return
			}
			if since < every {
				t.Reset(every - since)
				continue
			}
			t.Reset(every)
			if err := l.update(ctx, func(*Journal) {}); errors.Is(err, ErrLeaseLost) {
				r.opt.Logger.Error("lease lost; stopping", "deployment", r.opt.Deployment)
				cancel(ErrLeaseLost)
				return
			} else if err != nil && ctx.Err() == nil {
				r.opt.Logger.Warn("lease renewal failed; will retry", "deployment", r.opt.Deployment, "error", err)
			}
		}
	}
}

// writeJournal writes a change of the journal through the lease (h.lease.journal() reads what was last written),
// retrying transient store errors. Every attempt carries the same write id, so an attempt that Vault applied but
// whose answer was lost is recognised by the next one instead of looking like a lost lease.
func (h *holder) writeJournal(ctx context.Context, change func(*Journal)) error {
	return h.writeJournalHold(ctx, change, true)
}

// noteJournal records a change that only records progress (a node done, a phase ended); the next journal write
// makes it (see lease.noted).
func (h *holder) noteJournal(change func(*Journal)) { h.lease.note(change) }

// endJournal writes the journal's final change: when nothing follows in this run, the write also releases the lease
// (the release's own write is then skipped).
func (h *holder) endJournal(ctx context.Context, change func(*Journal)) error {
	return h.writeJournalHold(ctx, change, !h.last(change))
}

func (h *holder) writeJournalHold(ctx context.Context, change func(*Journal), hold bool) error {
	opID := newID()
	return Retry(ctx, h.opt.ReadyTimeout, func() error {
		err := h.lease.write(ctx, change, hold, opID)
		if errors.Is(err, ErrLeaseLost) {
			return Permanent(err)
		}
		return err
	})
}

// last says whether a journal write making change is this run's last: a rotation ends with it, and no emergency
// follows in the same run (Rotate begins one after a scheduled rotation it finished rolling back).
func (h *holder) last(change func(*Journal)) bool {
	j := h.lease.journal()
	change(&j)
	return j.Phase.Final() && (!h.emergency || j.Kind == KindEmergency)
}
