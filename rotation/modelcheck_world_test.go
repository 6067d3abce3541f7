package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// The model check's world: one deployment (a rotationtest.Store and rotationtest.Nodes) that a schedule's rotators
// take turns on, each through its own faultStore and faultNodes, which run the schedule's faults at the rotator's
// n-th call and check the invariants after every step that can break them: each node restart, publish and retire,
// each journal write that changes the phase, each node stopped by hand.

const (
	mcDeployment = "prod"
	mcLeaseTTL   = time.Hour
	// mcReadyTimeout bounds the rotator's retries in real time; the fakes answer at once, and a Vault outage lasts a
	// few calls, so it is never reached: it only has to be long enough that a loaded machine retries as many times.
	mcReadyTimeout = 30 * time.Second
)

// mcClock is the rotators' Clock: time moves only when the model moves it, and After moves it by the wait and fires
// at once, so a grace period costs nothing.
type mcClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *mcClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *mcClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.Add(d)
	return ch
}

func (c *mcClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.t = c.t.Add(d)
	}
	return c.t
}

// mcEpoch is where a world's clock starts: a fixed instant, or ROTATOR_TEST_EPOCH as the other rotation tests.
func mcEpoch() time.Time {
	if at, err := time.Parse(time.RFC3339, os.Getenv("ROTATOR_TEST_EPOCH")); err == nil {
		return at
	}
	return time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
}

var (
	errVaultDown   = errors.New("vault: 503 service unavailable (injected)")
	errProcessDead = errors.New("the rotator's process is gone (injected crash)")
)

// mcWorld is one schedule's deployment and what the invariants need to remember about it.
type mcWorld struct {
	sched mcSchedule
	store *rotationtest.Store
	nodes []*rotationtest.Node
	clock *mcClock
	fp    rotation.Fingerprinter

	// Turns: one rotator at a time makes calls (active), one call at a time (busy); a paused rotator's other
	// goroutines wait while the rotator that runs in its pause takes its turn.
	mu     sync.Mutex
	cond   *sync.Cond
	active *mcProc
	busy   bool

	// Faults in force.
	outage      int // store calls left that fail (Vault unavailable)
	loseAnswer  int // store writes left that land but answer with an error
	openAllowed map[string]bool
	refuseLeft  map[string]int // node -> starts left to refuse (-1: until the faults stop)
	loseLeft    map[string]int // node -> starts left that lose the keys (-1: until the faults stop)

	// What the invariants remember.
	lastWriter string         // owner of the latest journal write
	lastPhase  rotation.Phase // of the latest journal write
	lastKind   rotation.Kind
	retired    []rotation.Key // keys of the versions labelled retired (admin and read-only)

	trace      []string
	violations []string
	stats      mcStats
}

func newMCWorld(s mcSchedule) (*mcWorld, error) {
	fp, err := rotation.NewFingerprinter([]byte("model-check-fingerprint-secret"))
	if err != nil {
		return nil, err
	}
	w := &mcWorld{sched: s, store: rotationtest.NewStore(), clock: &mcClock{t: mcEpoch()}, fp: fp,
		openAllowed: map[string]bool{}, refuseLeft: map[string]int{}, loseLeft: map[string]int{}}
	w.cond = sync.NewCond(&w.mu)
	k1, err := rotation.NewKey()
	if err != nil {
		return nil, err
	}
	rec := rotation.KeyRecord{Key: k1, Fingerprint: fp.Of(k1), RotationID: "adopted", Since: w.clock.Now()}
	if _, err := w.store.Publish(context.Background(), mcDeployment, rotation.SlotAdmin, rec, 0); err != nil {
		return nil, err
	}
	slots := rotation.Slots{APIKey: k1}
	if s.readOnly {
		// The nodes share a read-only key the store does not hold yet: the first rotation imports it.
		if slots.ReadOnlyKey, err = rotation.NewKey(); err != nil {
			return nil, err
		}
	}
	for i := range s.nodes {
		n := rotationtest.NewNode(fmt.Sprintf("qdrant-%c", 'a'+i), slots)
		n.Now = w.clock.Now
		name := n.Name()
		// The node faults are counters the schedule sets; the fake asks them at each start.
		n.Refuse = func(rotation.Slots) bool { return w.spend(w.refuseLeft, name) }
		n.LoseKeys = func(rotation.Slots) bool { return w.spend(w.loseLeft, name) }
		w.nodes = append(w.nodes, n)
	}
	return w, nil
}

// spend uses one start of a node fault: true while it lasts.
func (w *mcWorld) spend(left map[string]int, node string) bool {
	switch n := left[node]; {
	case n < 0:
		return true
	case n > 0:
		left[node] = n - 1
		return true
	}
	return false
}

func (w *mcWorld) tracef(format string, args ...any) {
	w.trace = append(w.trace, fmt.Sprintf(format, args...))
}

func (w *mcWorld) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.violations = append(w.violations, msg)
	w.tracef("VIOLATION: %s", msg)
}

// enter waits for p's turn to make a call.
func (w *mcWorld) enter(p *mcProc) {
	w.mu.Lock()
	for w.active != p || w.busy {
		w.cond.Wait()
	}
	w.busy = true
	w.mu.Unlock()
}

func (w *mcWorld) leave() {
	w.mu.Lock()
	w.busy = false
	w.cond.Broadcast()
	w.mu.Unlock()
}

// handOver gives the turn to q (nil: nobody) from inside a call of the active rotator, and returns a function that
// takes it back for that call.
func (w *mcWorld) handOver(q *mcProc) (takeBack func()) {
	w.mu.Lock()
	prev := w.active
	w.active, w.busy = q, false
	w.cond.Broadcast()
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		for w.busy {
			w.cond.Wait()
		}
		w.active, w.busy = prev, prev != nil // a paused rotator takes back the call it was in
		w.mu.Unlock()
	}
}

// journal reads the stored journal, bypassing every fault.
func (w *mcWorld) journal() (rotation.Journal, int) {
	j, v, _ := w.store.ReadJournal(context.Background(), mcDeployment)
	return j, v
}

func (w *mcWorld) current() rotation.KeyRecord { return w.currentOf(rotation.SlotAdmin) }

// currentOf reads a slot's current record (a zero record when the slot was never published).
func (w *mcWorld) currentOf(slot rotation.Slot) rotation.KeyRecord {
	cur, _ := w.store.ReadCurrent(context.Background(), mcDeployment, slot)
	return cur
}

func mcIsOpen(n *rotationtest.Node) bool { return n.Up() && n.Running().Equal(rotation.Slots{}) }

// check asserts the invariants that hold at every moment, after the event named by at.
func (w *mcWorld) check(at string) {
	cur, ro := w.current(), w.currentOf(rotation.SlotReadOnly)
	j, _ := w.journal()
	// An emergency cut gives each node the new keys alone before they are published, by design: until the new
	// admin key is published (or the cut is rolled back), a node may refuse the key the store calls current, and
	// until the rotation ends, the read-only credential.
	emergency := j.Kind == rotation.KindEmergency && !j.Phase.Final()
	cutting := emergency && (j.Phase == rotation.PhaseCutting || j.Phase == rotation.PhasePublishing || j.Phase == rotation.PhaseRollingBack)
	for _, n := range w.nodes {
		if !n.Up() {
			continue
		}
		if mcIsOpen(n) {
			if !w.openAllowed[n.Name()] {
				w.violate("after %s: node %s is open though it never lost its keys", at, n.Name())
			}
			continue
		}
		if !cutting && !n.Accepts(cur.Key) {
			w.violate("after %s: node %s is up and refuses the store's current key %s (journal %s %s)", at, n.Name(), w.fp.Of(cur.Key), j.Kind, j.Phase)
		}
		if !emergency && !ro.Key.IsZero() && !n.Accepts(ro.Key) {
			w.violate("after %s: node %s is up and refuses the store's current read-only credential %s (%s; journal %s %s)", at, n.Name(), w.fp.Of(ro.Key), ro.Kind, j.Kind, j.Phase)
		}
		for _, k := range w.retired {
			if n.Accepts(k) {
				w.violate("after %s: node %s accepts the retired key %s", at, n.Name(), w.fp.Of(k))
			}
		}
	}
}

// sideEffect asserts that the rotator landing a side effect wrote the latest journal version: between two journal
// versions, at most one rotator's side effects land.
func (w *mcWorld) sideEffect(p *mcProc, what string) {
	if w.lastWriter != p.owner {
		w.violate("%s by %s, but the latest journal write is %s's", what, p.owner, w.lastWriter)
	}
}

// mcProc is one rotator process: its own fault schedule, calls counted from 0, dead once it crashed.
type mcProc struct {
	w      *mcWorld
	owner  string
	plan   mcRunPlan
	calls  int
	dead   bool
	paused bool // another rotator ran while this one was paused past its lease
	wrote  bool // it wrote the journal (holds, or held, the lease)
	// fenced: the rotator passed a fence (its "fenced" checkpoint) and has not yet made the side effect it guards.
	fenced atomic.Bool
	cancel context.CancelFunc
}

// run starts a rotator with the process's faulty ports and runs one Rotate to its end (synchronously).
func (w *mcWorld) run(owner string, plan mcRunPlan) (*mcProc, rotation.Report, error) {
	p := &mcProc{w: w, owner: owner, plan: plan}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.cancel = cancel
	nodes := make([]rotation.Node, len(w.nodes))
	for i, n := range w.nodes {
		nodes[i] = newFaultNode(p, n)
	}
	r, err := rotation.New(&faultStore{p: p, inner: w.store}, nodes, rotation.Options{
		Deployment: mcDeployment, Grace: w.sched.grace, ReadyTimeout: mcReadyTimeout, LeaseTTL: mcLeaseTTL,
		InternalAuth: w.sched.internalAuth, ReadOnly: w.sched.readOnly, Owner: owner, Fingerprints: w.fp, Clock: w.clock,
		Checkpoint: func(point string) {
			if point == "fenced" {
				p.fenced.Store(true)
			}
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return p, rotation.Report{}, err
	}
	give := w.handOver(p)
	w.tracef("%s starts (emergency=%v)", owner, plan.emergency)
	rep, err := r.Rotate(ctx, rotation.Request{Emergency: plan.emergency})
	give() // hand the turn back to whoever ran p (the driver, or a paused rotator)
	w.stats.calls += p.calls
	if p.paused && errors.Is(err, rotation.ErrLeaseLost) {
		w.stats.fenced++
	}
	if rep.Escalated {
		w.stats.escalated++
	}
	w.tracef("%s ends after %d calls: outcome %s phase %s: %s", owner, p.calls, rep.Outcome, rep.Phase, mcErrText(err))
	return p, rep, err
}

func mcErrText(err error) string {
	if err == nil {
		return "ok"
	}
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// call runs one port call of p: the faults scheduled at this call, then the call itself (do), then the invariants.
func (p *mcProc) call(c mcPortCall, do func() error) error {
	w := p.w
	w.enter(p)
	defer w.leave()
	if p.dead {
		return c.deadErr
	}
	idx := p.calls
	p.calls++
	var after []mcFault
	for _, f := range p.plan.faults {
		if f.at != idx {
			continue
		}
		if (f.kind == faultPause || f.kind == faultArrive) && p.fenced.Load() && !c.effect {
			// Between a fence and the side effect it guards (a publish reads the record first): the window
			// no lease can close, as inside the side effect itself (below).
			w.tracef("%s's %s at call %d (%s) skipped: between a fence and its side effect", p.owner, f.kind, idx, c.op)
			w.stats.skipped++
			continue
		}
		// Another rotator runs inside a side effect only once it landed: one frozen between its fence and the side
		// effect is the window no lease can close. Inside a journal write (and a holder's reading back of the journal
		// after a conflict, part of its write), only before the write landed: a freeze after it is caught by the
		// fence's own guard, the write's duration on the process's monotonic clock, which this model's clock
		// cannot move.
		interrupt := f.kind == faultPause || f.kind == faultArrive
		inWrite := c.journal || (c.journalRead && p.wrote)
		if f.kind == faultCrashAfter || (interrupt && (c.effect || (f.after && !inWrite))) {
			after = append(after, f)
			continue
		}
		if err := p.inject(f, c, idx); err != nil {
			return err
		}
	}
	if c.store && w.outage > 0 {
		w.outage--
		w.stats.outageCalls++
		return fmt.Errorf("%s: %w", c.op, errVaultDown)
	}
	err := do()
	if c.effect || c.journal {
		p.fenced.Store(false)
	}
	if c.write && err == nil && w.loseAnswer > 0 {
		w.loseAnswer--
		w.stats.lostAnswers++
		w.tracef("%s: %s landed, its answer is lost", p.owner, c.op)
		err = fmt.Errorf("%s: %w", c.op, context.DeadlineExceeded)
	}
	if c.effect {
		w.check(p.owner + " " + c.op) // reads change nothing; a journal write is checked when it changes phase
	}
	for _, f := range after {
		if ierr := p.inject(f, c, idx); ierr != nil {
			return ierr
		}
	}
	return err
}

// inject runs fault f at p's call idx (c); a non-nil error is what the call answers instead.
func (p *mcProc) inject(f mcFault, c mcPortCall, idx int) error {
	w := p.w
	w.stats.fired[f.kind]++
	switch f.kind {
	case faultCrashBefore, faultCrashAfter:
		w.tracef("%s crashes at call %d (%s, %s)", p.owner, idx, c.op, f.kind)
		p.dead = true
		p.cancel()
		return c.deadErr
	case faultOutage:
		w.tracef("vault unavailable for %d calls from %s's call %d", f.n, p.owner, idx)
		w.outage = f.n
	case faultLoseAnswer:
		w.tracef("the answer of the next store write from %s's call %d is lost", p.owner, idx)
		w.loseAnswer++
	case faultStop:
		n := w.nodes[f.node]
		w.tracef("node %s stopped by hand at %s's call %d", n.Name(), p.owner, idx)
		n.Stop()
		w.check("stop " + n.Name())
	case faultRefuse:
		w.tracef("node %s will refuse %s at %s's call %d", w.nodes[f.node].Name(), mcStarts(f.n), p.owner, idx)
		w.refuseLeft[w.nodes[f.node].Name()] = f.n
	case faultLoseKeys:
		name := w.nodes[f.node].Name()
		w.tracef("node %s will start open (lose its keys) %s at %s's call %d", name, mcStarts(f.n), p.owner, idx)
		w.loseLeft[name] = f.n
		w.openAllowed[name] = true
	case faultExpire:
		w.tracef("%s's lease expires (clock +%s) at call %d", p.owner, mcLeaseTTL+time.Minute, idx)
		w.clock.Add(mcLeaseTTL + time.Minute)
	case faultPause, faultArrive:
		p.interrupt(f, c, idx)
	}
	return nil
}

func mcStarts(n int) string {
	if n < 0 {
		return "every start until the faults stop"
	}
	return fmt.Sprintf("the next %d starts", n)
}

// interrupt runs another rotator while p is inside a call: paused past its lease (faultPause), or not paused at all,
// an emergency request arriving while p holds the lease (faultArrive).
func (p *mcProc) interrupt(f mcFault, c mcPortCall, idx int) {
	w := p.w
	if j, _ := w.journal(); j.Owner == p.owner && j.Phase == rotation.PhaseCutting {
		// The cut moves every node at once, in goroutines: a pause of one goroutine while the others go on is not
		// a process pause, which the model can only make between calls of a rotator that runs one step at a time.
		w.tracef("%s's %s at call %d skipped: the cut runs nodes in parallel", p.owner, f.kind, idx)
		w.stats.skipped++
		return
	}
	owner := fmt.Sprintf("%s.%d", p.owner, idx)
	if f.kind == faultArrive {
		j, v := w.journal()
		held := j.Owner == p.owner && w.clock.Now().Before(j.LeaseUntil)
		w.tracef("an emergency request (%s) arrives at %s's call %d (%s)", owner, p.owner, idx, c.op)
		_, _, err := w.run(owner, mcRunPlan{emergency: true})
		refused := errors.Is(err, rotation.ErrLocked) || errors.Is(err, errVaultDown)
		if _, after := w.journal(); held && (!refused || after != v) {
			w.violate("%s arrived while %s held a fresh lease: %s, journal version %d -> %d; want ErrLocked and no write", owner, p.owner, mcErrText(err), v, after)
		}
		return
	}
	w.tracef("%s pauses in call %d (%s) past its lease; %s runs meanwhile", p.owner, idx, c.op, owner)
	w.clock.Add(mcLeaseTTL + time.Minute)
	sub := mcRunPlan{emergency: f.emergency, faults: f.sub}
	w.run(owner, sub)
	w.tracef("%s resumes", p.owner)
	p.paused = true
}

// mcPortCall describes one call of a port for the fault machinery.
type mcPortCall struct {
	op          string
	store       bool  // a Store call (Vault)
	write       bool  // a Store write
	journal     bool  // WriteJournal: a pause in it is made before it reaches the store
	journalRead bool  // ReadJournal
	effect      bool  // a side effect (Apply, Publish, Retire): a pause in it is made after it landed
	deadErr     error // what a call of a crashed process answers
}

// faultStore decorates rotationtest.Store with the schedule's faults.
type faultStore struct {
	p     *mcProc
	inner *rotationtest.Store
}

var _ rotation.Store = (*faultStore)(nil)

func (s *faultStore) ReadCurrent(ctx context.Context, dep string, slot rotation.Slot) (rec rotation.KeyRecord, err error) {
	err = s.p.call(mcPortCall{op: "ReadCurrent", store: true, deadErr: errProcessDead}, func() error {
		rec, err = s.inner.ReadCurrent(ctx, dep, slot)
		return err
	})
	return rec, err
}

func (s *faultStore) Publish(ctx context.Context, dep string, slot rotation.Slot, rec rotation.KeyRecord, cas int) (v int, err error) {
	w := s.p.w
	err = s.p.call(mcPortCall{op: "Publish", store: true, write: true, effect: true, deadErr: errProcessDead}, func() error {
		v, err = s.inner.Publish(ctx, dep, slot, rec, cas)
		if err == nil {
			w.stats.publishes++
			w.tracef("%s publishes %s %s %s (version %d, rotation %s)", s.p.owner, slot, rec.Kind, w.fp.Of(rec.Key), v, rec.RotationID)
			if cas > 0 {
				// An import (the first version, check-and-set on an empty slot) overwrites nothing: a stale
				// rotator's lands only where nobody wrote, with the key every node has.
				w.sideEffect(s.p, fmt.Sprintf("publish of %s version %d", slot, v))
			}
			for _, n := range w.nodes {
				if mcIsOpen(n) {
					w.violate("%s published while node %s is open", s.p.owner, n.Name())
				}
			}
		}
		return err
	})
	return v, err
}

func (s *faultStore) Retire(ctx context.Context, dep string, slot rotation.Slot, version int, at time.Time) error {
	w := s.p.w
	return s.p.call(mcPortCall{op: "Retire", store: true, write: true, effect: true, deadErr: errProcessDead}, func() error {
		before := len(s.inner.Retired(dep, slot))
		if err := s.inner.Retire(ctx, dep, slot, version, at); err != nil {
			return err
		}
		if len(s.inner.Retired(dep, slot)) == before {
			return nil // labelled already: nothing lands
		}
		recs := s.inner.Versions(dep, slot)
		if version < 1 || version > len(recs) {
			w.violate("%s retired version %d of %d", s.p.owner, version, len(recs))
			return nil
		}
		k := recs[version-1].Key
		// Not held to the journal writer (sideEffect): labelling the base version of the holder's own rotation,
		// which every node already refuses, again is what any rotator finishing that rotation does. What would
		// harm, a retired key that a node still accepts or the current version retired, is checked instead.
		w.tracef("%s retires %s version %d (%s)", s.p.owner, slot, version, w.fp.Of(k))
		if k.Equal(w.currentOf(slot).Key) {
			w.violate("%s retired the current %s version %d", s.p.owner, slot, version)
		}
		w.retired = append(w.retired, k)
		return nil
	})
}

func (s *faultStore) ReadJournal(ctx context.Context, dep string) (j rotation.Journal, v int, err error) {
	err = s.p.call(mcPortCall{op: "ReadJournal", store: true, journalRead: true, deadErr: errProcessDead}, func() error {
		j, v, err = s.inner.ReadJournal(ctx, dep)
		return err
	})
	return j, v, err
}

// WriteJournal of a crashed process answers a conflict, as the store would once the next rotator took the lease: the
// dead process's rotator stops at once instead of retrying.
func (s *faultStore) WriteJournal(ctx context.Context, dep string, j rotation.Journal, cas int) (v int, err error) {
	w := s.p.w
	err = s.p.call(mcPortCall{op: "WriteJournal", store: true, write: true, journal: true, deadErr: rotation.ErrConflict}, func() error {
		v, err = s.inner.WriteJournal(ctx, dep, j, cas)
		if err == nil {
			if w.lastWriter != s.p.owner {
				w.tracef("%s writes journal version %d (%s %s)", s.p.owner, v, j.Kind, j.Phase)
			}
			w.lastWriter, s.p.wrote = s.p.owner, true
			if j.Phase != w.lastPhase || j.Kind != w.lastKind {
				w.tracef("%s: journal %s %s", s.p.owner, j.Kind, j.Phase)
				w.lastPhase, w.lastKind = j.Phase, j.Kind
				w.check(s.p.owner + " journal " + string(j.Phase)) // an exemption may end (an emergency's cut)
			}
		}
		return err
	})
	return v, err
}

// faultNode decorates rotationtest.Node with the schedule's faults.
type faultNode struct {
	p     *mcProc
	inner *rotationtest.Node
	// The calls, named once.
	keys, recover, apply, probe, diagnose mcPortCall
}

func newFaultNode(p *mcProc, n *rotationtest.Node) *faultNode {
	op := func(verb string) mcPortCall { return mcPortCall{op: verb + " " + n.Name(), deadErr: errProcessDead} }
	f := &faultNode{p: p, inner: n, keys: op("Keys"), recover: op("Recover"), apply: op("Apply"), probe: op("Probe"), diagnose: op("Diagnose")}
	f.apply.effect = true
	f.probe.deadErr = errNodeGone
	return f
}

var _ rotation.Node = (*faultNode)(nil)

var errNodeGone = fmt.Errorf("%w (the rotator's process is gone)", rotation.ErrNodeDown)

func (n *faultNode) Name() string   { return n.inner.Name() }
func (n *faultNode) Method() string { return n.inner.Method() }

func (n *faultNode) Keys(ctx context.Context) (s rotation.Slots, err error) {
	err = n.p.call(n.keys, func() error {
		s, err = n.inner.Keys(ctx)
		return err
	})
	return s, err
}

func (n *faultNode) Recover(ctx context.Context) error {
	return n.p.call(n.recover, func() error { return n.inner.Recover(ctx) })
}

func (n *faultNode) Apply(ctx context.Context, s rotation.Slots) error {
	w := n.p.w
	return n.p.call(n.apply, func() error {
		w.sideEffect(n.p, "restart of node "+n.Name())
		w.stats.applies++
		err := n.inner.Apply(ctx, s)
		state := "up"
		switch {
		case !n.inner.Up():
			state = "down"
		case mcIsOpen(n.inner):
			state = "open"
		}
		w.tracef("%s restarts %s with api %s alt %s: %s", n.p.owner, n.Name(), w.fp.Of(s.APIKey), w.fp.Of(s.AltAPIKey), state)
		return err
	})
}

func (n *faultNode) Probe(ctx context.Context, k rotation.Key) error {
	return n.p.call(n.probe, func() error { return n.inner.Probe(ctx, k) })
}

func (n *faultNode) Diagnose(ctx context.Context) rotation.Diagnosis {
	var d rotation.Diagnosis
	_ = n.p.call(n.diagnose, func() error {
		d = n.inner.Diagnose(ctx)
		return nil
	})
	return d
}

// summary names what every node runs, by fingerprint, for a trace.
func (w *mcWorld) summary() string {
	var b strings.Builder
	cur := w.current()
	j, v := w.journal()
	ro := w.currentOf(rotation.SlotReadOnly)
	fmt.Fprintf(&b, "store current %s v%d, read-only %s %s v%d; journal v%d %s %s owner %q;", w.fp.Of(cur.Key), cur.Version, ro.Kind, w.fp.Of(ro.Key), ro.Version, v, j.Kind, j.Phase, j.Owner)
	for _, n := range w.nodes {
		s := n.Running()
		state := "up"
		if !n.Up() {
			state = "down"
		} else if mcIsOpen(n) {
			state = "open"
		}
		fmt.Fprintf(&b, " %s %s api %s alt %s ro %s;", n.Name(), state, w.fp.Of(s.APIKey), w.fp.Of(s.AltAPIKey), w.fp.Of(s.ReadOnlyKey))
	}
	return b.String()
}
