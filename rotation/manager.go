package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// Errors of the Manager.
var (
	// ErrUnknownDeployment: no deployment has that name.
	ErrUnknownDeployment = errors.New("unknown deployment")
	// ErrBusy: a rotation of the deployment is already running here.
	ErrBusy = errors.New("a rotation of this deployment is running")
)

// BusyError names the run in flight.
type BusyError struct{ RunID string }

func (e *BusyError) Error() string        { return fmt.Sprintf("%v (run %s)", ErrBusy, e.RunID) }
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Trigger asks the Manager for a run.
type Trigger struct {
	Emergency bool
	DryRun    bool
	// Actor is who asked: "schedule", "api:<token name>", "cli".
	Actor string
}

// RunState is where a run stands.
type RunState string

// Run states.
const (
	RunQueued     RunState = "queued" // waits for one of the daemon's max_parallel slots; holds the deployment's single flight
	RunRunning    RunState = "running"
	RunCompleted  RunState = "completed"
	RunRolledBack RunState = "rolled_back"
	RunFailed     RunState = "failed"
	RunLocked     RunState = "locked"    // another rotator (another daemon) holds the lease
	RunPlanned    RunState = "planned"   // a dry run
	RunCancelled  RunState = "cancelled" // the daemon stopped while the run was queued: nothing was done
)

// Final says whether a run in this state has ended.
func (s RunState) Final() bool { return s != RunQueued && s != RunRunning }

// NodeProgress is the last thing that happened to a node in a run.
type NodeProgress struct {
	Step    string    `json:"step"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// Run is one rotation (or dry run) the Manager started. It holds fingerprints, never keys.
type Run struct {
	ID         string                  `json:"id"`
	Deployment string                  `json:"deployment"`
	Actor      string                  `json:"actor"`
	Emergency  bool                    `json:"emergency"`
	DryRun     bool                    `json:"dry_run"`
	State      RunState                `json:"state"`
	RotationID string                  `json:"rotation_id,omitempty"`
	Phase      Phase                   `json:"phase,omitempty"`
	Nodes      map[string]NodeProgress `json:"nodes"`
	Events     []Event                 `json:"events"`
	// Started is when the run was asked for; RunningSince when it left the queue and began (equal when it did not
	// wait). Seconds is the time it ran, QueuedSeconds the time it waited for a slot.
	Started       time.Time `json:"started"`
	RunningSince  time.Time `json:"running_since,omitzero"`
	Finished      time.Time `json:"finished,omitzero"`
	Seconds       float64   `json:"duration_seconds"`
	QueuedSeconds float64   `json:"queued_seconds,omitempty"`
	Error         string    `json:"error,omitempty"`
	// ErrorClass sorts a failed run for callers that exit with the matching code: drift, cluster_unsafe,
	// rolled_back, locked, failed, cancelled.
	ErrorClass string  `json:"error_class,omitempty"`
	Plan       *Plan   `json:"plan,omitempty"`
	Report     *Report `json:"report,omitempty"`
}

// Hooks let the daemon watch runs (audit events, metrics). Each may be nil.
type Hooks struct {
	Event    func(run Run, e Event)
	Finished func(run Run)
}

type managed struct {
	rot      *Rotator
	schedule *Schedule
	running  string // run id, "" when idle
	last     *Run
	failures int
	retryAt  time.Time
	nextRun  time.Time
	// maxAgeAt is when (on the deployment's clock) the scheduler last started a run because the key was older than
	// its max age; fresh is the key version the last completed run here made current, and freshAt when. Together
	// they keep a skew between the time Vault stores and our clock from rotating in a loop.
	maxAgeAt time.Time
	fresh    int
	freshAt  time.Time
	keys     []NamedKeyState // as last read or re-minted by the schedule loop; nil: read them at the next poll
	open     map[string]bool // node -> open (accepts a key never issued), as last probed by the schedule loop
}

func (d *managed) now() time.Time { return d.rot.opt.Clock.Now() }

// Manager runs rotations of several deployments: at most one at a time per deployment (a single-flight lock held
// here and released with defer, shared by the scheduler and the API), each in a goroutine it owns, and at most
// max_parallel rotating at once across deployments (SetMaxParallel). A run beyond that bound waits in a queue in
// state "queued", holding its deployment's single flight; emergencies go ahead of every other waiting run (they
// still wait for a slot: the bound is what keeps a fleet's restarts, Docker Engines and Vault within what the
// operator allowed); dry runs restart nothing and take no slot. Every time it keeps comes from the deployment's own
// clock (its Rotator's Options.Clock).
type Manager struct {
	logger *slog.Logger
	hooks  Hooks
	ctx    context.Context // runs and loops stop when it ends
	poll   time.Duration   // the schedules' poll interval (RunSchedules)

	mu     sync.Mutex
	deps   map[string]*managed
	runs   map[string]*Run
	order  []string
	limit  int       // max_parallel: rotations at once across deployments
	active int       // rotations holding a slot
	queue  []*waiter // runs waiting for a slot: emergencies first, then in the order asked
	wg     sync.WaitGroup
}

// DefaultMaxParallel is the bound on rotations at once when none is configured: a fleet due together rotates a few
// deployments at a time, never every container at once, and a 50-deployment fleet is done in 13 rounds, not 50.
const DefaultMaxParallel = 4

// waiter is a queued run; ready is closed when it is given a slot.
type waiter struct {
	run       *Run
	emergency bool
	ready     chan struct{}
}

// maxRuns bounds the runs kept for GET /v1/rotations/{id}.
const maxRuns = 1000

// NewManager returns a Manager whose runs and schedules live until ctx ends.
func NewManager(ctx context.Context, logger *slog.Logger, hooks Hooks) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{logger: logger, hooks: hooks, ctx: ctx, deps: map[string]*managed{}, runs: map[string]*Run{}, limit: DefaultMaxParallel}
}

// SetMaxParallel bounds the rotations running at once across deployments (n < 1: DefaultMaxParallel). Raising it
// starts queued runs at once.
func (m *Manager) SetMaxParallel(n int) {
	if n < 1 {
		n = DefaultMaxParallel
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limit = n
	m.grantLocked()
}

// Observer returns the function a deployment's Rotator must report its events to (Options.Observe).
func (m *Manager) Observer(deployment string) func(Event) {
	return func(e Event) {
		m.mu.Lock()
		d := m.deps[deployment]
		var run *Run
		if d != nil && d.running != "" {
			run = m.runs[d.running]
		}
		if run == nil {
			m.mu.Unlock()
			return
		}
		run.Events = append(run.Events, e)
		if e.RotationID != "" {
			run.RotationID = e.RotationID
		}
		if e.Phase != "" {
			run.Phase = e.Phase
		}
		if e.Node != "" {
			run.Nodes[e.Node] = NodeProgress{Step: e.Step, Message: e.Message, Time: e.Time}
		}
		snapshot := run.copy()
		m.mu.Unlock()
		if m.hooks.Event != nil {
			m.hooks.Event(snapshot, e)
		}
	}
}

// Add registers a deployment's rotator and, optionally, its schedule.
func (m *Manager) Add(rot *Rotator, schedule *Schedule) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deps[rot.opt.Deployment] = &managed{rot: rot, schedule: schedule}
}

// Start begins a run of a deployment in the background and returns its id; ErrUnknownDeployment, or a BusyError
// naming the run in flight. An emergency asked for while the deployment's run is still queued (not yet started)
// turns that run into an emergency, ahead in the queue, and returns its id: the operator's emergency never waits
// behind the scheduled run it collided with.
func (m *Manager) Start(deployment string, t Trigger) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.deps[deployment]
	if !ok {
		return "", fmt.Errorf("deployment %q: %w", deployment, ErrUnknownDeployment)
	}
	if d.running != "" {
		if r := m.runs[d.running]; t.Emergency && !t.DryRun && r != nil && r.State == RunQueued && !r.Emergency {
			m.promoteLocked(r, t.Actor)
			return r.ID, nil
		}
		return "", &BusyError{RunID: d.running}
	}
	if m.ctx.Err() != nil {
		return "", fmt.Errorf("deployment %s: the daemon is stopping", deployment)
	}
	now := d.now()
	run := &Run{ID: "run-" + now.UTC().Format("20060102T150405") + "-" + newID()[:8], Deployment: deployment, Actor: t.Actor,
		Emergency: t.Emergency, DryRun: t.DryRun, State: RunRunning, Nodes: map[string]NodeProgress{}, Started: now, RunningSince: now}
	var w *waiter
	switch {
	case t.DryRun: // a plan restarts nothing: it takes no slot
	case m.active < m.limit:
		m.active++
	default:
		w = &waiter{run: run, emergency: t.Emergency, ready: make(chan struct{})}
		run.State, run.RunningSince = RunQueued, time.Time{}
		m.enqueueLocked(w)
	}
	d.running = run.ID
	m.runs[run.ID] = run
	m.order = append(m.order, run.ID)
	// Forget the oldest finished runs beyond maxRuns (one in flight is kept: its id is what a 409 names).
	for i := 0; len(m.order) > maxRuns && i < len(m.order); {
		if old := m.runs[m.order[i]]; old != nil && !old.State.Final() {
			i++
			continue
		}
		delete(m.runs, m.order[i])
		m.order = append(m.order[:i], m.order[i+1:]...)
	}
	m.wg.Add(1)
	go m.execute(d, run, t, w)
	return run.ID, nil
}

// enqueueLocked queues w: an emergency behind the emergencies already waiting, ahead of everything else; any other
// run last. m.mu is held.
func (m *Manager) enqueueLocked(w *waiter) {
	at := len(m.queue)
	if w.emergency {
		if at = slices.IndexFunc(m.queue, func(q *waiter) bool { return !q.emergency }); at < 0 {
			at = len(m.queue)
		}
	}
	m.queue = slices.Insert(m.queue, at, w)
}

// promoteLocked makes the queued run r an emergency asked for by actor, moving it ahead. m.mu is held.
func (m *Manager) promoteLocked(r *Run, actor string) {
	i := slices.IndexFunc(m.queue, func(q *waiter) bool { return q.run == r })
	if i < 0 {
		return // given a slot a moment ago: it starts as it was asked for
	}
	w := m.queue[i]
	m.queue = slices.Delete(m.queue, i, i+1)
	w.emergency, r.Emergency, r.Actor = true, true, actor
	m.enqueueLocked(w)
	m.logger.Info("queued run made an emergency", "deployment", r.Deployment, "run_id", r.ID, "actor", actor)
}

// grantLocked gives free slots to the runs at the head of the queue. m.mu is held.
func (m *Manager) grantLocked() {
	for m.active < m.limit && len(m.queue) > 0 {
		w := m.queue[0]
		m.queue = m.queue[1:]
		m.active++
		close(w.ready)
	}
}

// releaseLocked frees a slot and hands it on. m.mu is held.
func (m *Manager) releaseLocked() {
	m.active--
	m.grantLocked()
}

// awaitSlot waits until the queued run w holds a slot (true), or the Manager stops first (false: it left the queue
// and holds nothing).
func (m *Manager) awaitSlot(d *managed, w *waiter) bool {
	select {
	case <-w.ready:
	case <-m.ctx.Done():
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := slices.Index(m.queue, w); i >= 0 {
		m.queue = slices.Delete(m.queue, i, i+1)
		return false
	}
	if m.ctx.Err() != nil { // given a slot as the daemon stops: start nothing, pass the slot on
		m.releaseLocked()
		return false
	}
	w.run.State, w.run.RunningSince = RunRunning, d.now()
	return true
}

// errStoppedQueued ends a run the daemon stopped before it left the queue.
var errStoppedQueued = errors.New("the daemon stopped while the run waited for a slot (daemon.max_parallel); nothing was done")

// execute runs one rotation, first waiting for a slot when queued (w); the deployment's single-flight lock and the
// slot are released with defer, whatever happens.
func (m *Manager) execute(d *managed, run *Run, t Trigger, w *waiter) {
	defer m.wg.Done()
	var rep Report
	var plan Plan
	var err error
	slot := !t.DryRun
	defer func() {
		m.mu.Lock()
		d.running = ""
		run.Finished = d.now()
		if !run.RunningSince.IsZero() {
			run.Seconds = run.Finished.Sub(run.RunningSince).Seconds()
			run.QueuedSeconds = run.RunningSince.Sub(run.Started).Seconds()
		} else {
			run.QueuedSeconds = run.Finished.Sub(run.Started).Seconds()
		}
		switch {
		case errors.Is(err, errStoppedQueued):
			run.State = RunCancelled
		case t.DryRun && err == nil:
			run.State, run.Plan = RunPlanned, &plan
		case errors.Is(err, ErrLocked):
			run.State = RunLocked
		case err == nil:
			run.State = RunCompleted
		case errors.Is(err, ErrRolledBack):
			run.State = RunRolledBack
		default:
			run.State = RunFailed
		}
		if !t.DryRun && rep.RotationID != "" {
			run.Report, run.RotationID, run.Phase = &rep, rep.RotationID, rep.Phase
		}
		if err != nil {
			run.Error, run.ErrorClass = err.Error(), errorClass(err)
		}
		if !t.DryRun && run.State != RunLocked && run.State != RunCancelled {
			d.last = run
			if run.State == RunCompleted {
				d.failures, d.retryAt = 0, time.Time{}
				d.fresh, d.freshAt = rep.NewVersion, run.Finished
				d.keys = nil // the run re-minted every named key
			} else {
				d.failures++
				d.retryAt = d.now().Add(min(time.Duration(1<<min(d.failures-1, 6))*10*time.Minute, 6*time.Hour))
			}
		}
		snapshot := run.copy()
		m.mu.Unlock()
		if m.hooks.Finished != nil {
			m.hooks.Finished(snapshot)
		}
		if slot { // after the hook: the next run starts once this one is fully accounted for
			m.mu.Lock()
			m.releaseLocked()
			m.mu.Unlock()
		}
	}()
	if w != nil && !m.awaitSlot(d, w) {
		slot, err = false, errStoppedQueued
		return
	}
	m.mu.Lock()
	req := Request{Emergency: run.Emergency} // made an emergency while it waited, perhaps
	m.mu.Unlock()
	if t.DryRun {
		plan, err = d.rot.Plan(m.ctx, req)
		return
	}
	rep, err = d.rot.Rotate(m.ctx, req)
}

// Error classes of a finished run (Run.ErrorClass).
const (
	ClassDrift         = "drift"
	ClassClusterUnsafe = "cluster_unsafe"
	ClassRolledBack    = "rolled_back"
	ClassLocked        = "locked"
	ClassFailed        = "failed"
	ClassCancelled     = "cancelled" // the daemon stopped before the run left the queue
)

// errorClass sorts a run's error by the sentinel it wraps.
func errorClass(err error) string {
	switch {
	case errors.Is(err, errStoppedQueued):
		return ClassCancelled
	case errors.Is(err, ErrRolledBack):
		return ClassRolledBack
	case errors.Is(err, ErrLocked):
		return ClassLocked
	case errors.Is(err, ErrDrift):
		return ClassDrift
	case errors.Is(err, ErrClusterUnsafe):
		return ClassClusterUnsafe
	}
	return ClassFailed
}

// Get returns a copy of a run.
func (m *Manager) Get(id string) (Run, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.runs[id]
	if !ok {
		return Run{}, false
	}
	return r.copy(), true
}

// Runs lists the runs kept (the last 1000 and every one in flight), oldest first, without their events and per-node
// progress (GET /v1/rotations/{id} has them).
func (m *Manager) Runs() []Run {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Run, 0, len(m.order))
	for _, id := range m.order {
		if r := m.runs[id]; r != nil {
			c := *r
			c.Nodes, c.Events = nil, nil
			out = append(out, c)
		}
	}
	return out
}

// Running is how many runs are in flight (not counting those queued).
func (m *Manager) Running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, d := range m.deps {
		if d.running != "" {
			n++
		}
	}
	return n - len(m.queue)
}

// Queued is how many runs wait for a slot (daemon.max_parallel).
func (m *Manager) Queued() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

// DeploymentView is what GET /v1/deployments shows of one deployment.
type DeploymentView struct {
	Name        string `json:"name"`
	Status      Status `json:"status"`
	StatusError string `json:"status_error,omitempty"`
	Running     string `json:"running_run_id,omitempty"`
	// Queued says the run in Running waits for a slot (daemon.max_parallel): it has not started.
	Queued      bool      `json:"queued,omitempty"`
	LastRun     string    `json:"last_run_id,omitempty"`
	LastOutcome RunState  `json:"last_outcome,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	NextRun     time.Time `json:"next_run,omitzero"`
	// Keys are the named keys as the schedule loop last saw them, with each JWT's expiry.
	Keys []NamedKeyState `json:"named_keys,omitempty"`
	// OpenNodes are the nodes found open (accepting a key never issued) by the last check: a failure.
	OpenNodes []string `json:"open_nodes,omitempty"`
	// Checked is every node the last open check reached, open or not.
	Checked map[string]bool `json:"-"`
	// MaxAge is the schedule's max_age (0: none).
	MaxAge time.Duration `json:"-"`
}

// Deployments describes every deployment, sorted by name (reading Vault for each).
func (m *Manager) Deployments(ctx context.Context) []DeploymentView {
	m.mu.Lock()
	names := slices.Sorted(maps.Keys(m.deps))
	m.mu.Unlock()
	out := make([]DeploymentView, 0, len(names))
	for _, name := range names {
		m.mu.Lock()
		d := m.deps[name]
		v := DeploymentView{Name: name, Running: d.running, NextRun: d.nextRun, Keys: slices.Clone(d.keys), Checked: maps.Clone(d.open)}
		if d.schedule != nil {
			v.MaxAge = d.schedule.MaxAge()
		}
		for _, node := range slices.Sorted(maps.Keys(d.open)) {
			if d.open[node] {
				v.OpenNodes = append(v.OpenNodes, node)
			}
		}
		if r := m.runs[d.running]; r != nil && r.State == RunQueued {
			v.Queued = true
		}
		if d.last != nil {
			v.LastRun, v.LastOutcome, v.LastError = d.last.ID, d.last.State, d.last.Error
		}
		rot := d.rot
		m.mu.Unlock()
		st, err := rot.Status(ctx)
		v.Status = st
		if err != nil {
			v.StatusError = err.Error()
		}
		out = append(out, v)
	}
	return out
}

// Wait waits for every run and schedule loop to end (after the Manager's context ended).
func (m *Manager) Wait() { m.wg.Wait() }

func (r *Run) copy() Run {
	c := *r
	c.Nodes = maps.Clone(r.Nodes)
	c.Events = slices.Clone(r.Events)
	return c
}
