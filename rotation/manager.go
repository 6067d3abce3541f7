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
	RunRunning    RunState = "running"
	RunCompleted  RunState = "completed"
	RunRolledBack RunState = "rolled_back"
	RunFailed     RunState = "failed"
	RunLocked     RunState = "locked"  // another rotator (another daemon) holds the lease
	RunPlanned    RunState = "planned" // a dry run
)

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
	Started    time.Time               `json:"started"`
	Finished   time.Time               `json:"finished,omitzero"`
	Seconds    float64                 `json:"duration_seconds"`
	Error      string                  `json:"error,omitempty"`
	// ErrorClass sorts a failed run for callers that exit with the matching code: drift, cluster_unsafe,
	// rolled_back, locked, failed.
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
// here and released with defer, shared by the scheduler and the API), each in a goroutine it owns.
// Every time it keeps comes from the deployment's own clock (its Rotator's Options.Clock).
type Manager struct {
	logger *slog.Logger
	hooks  Hooks
	ctx    context.Context // runs and loops stop when it ends
	poll   time.Duration   // the schedules' poll interval (RunSchedules)

	mu    sync.Mutex
	deps  map[string]*managed
	runs  map[string]*Run
	order []string
	wg    sync.WaitGroup
}

// maxRuns bounds the runs kept for GET /v1/rotations/{id}.
const maxRuns = 1000

// NewManager returns a Manager whose runs and schedules live until ctx ends.
func NewManager(ctx context.Context, logger *slog.Logger, hooks Hooks) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{logger: logger, hooks: hooks, ctx: ctx, deps: map[string]*managed{}, runs: map[string]*Run{}}
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
// naming the run in flight.
func (m *Manager) Start(deployment string, t Trigger) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.deps[deployment]
	if !ok {
		return "", fmt.Errorf("deployment %q: %w", deployment, ErrUnknownDeployment)
	}
	if d.running != "" {
		return "", &BusyError{RunID: d.running}
	}
	if m.ctx.Err() != nil {
		return "", fmt.Errorf("deployment %s: the daemon is stopping", deployment)
	}
	now := d.now()
	run := &Run{ID: "run-" + now.UTC().Format("20060102T150405") + "-" + newID()[:8], Deployment: deployment, Actor: t.Actor,
		Emergency: t.Emergency, DryRun: t.DryRun, State: RunRunning, Nodes: map[string]NodeProgress{}, Started: now}
	d.running = run.ID
	m.runs[run.ID] = run
	m.order = append(m.order, run.ID)
	// Forget the oldest finished runs beyond maxRuns (a running one is kept: its id is what a 409 names).
	for i := 0; len(m.order) > maxRuns && i < len(m.order); {
		if old := m.runs[m.order[i]]; old != nil && old.State == RunRunning {
			i++
			continue
		}
		delete(m.runs, m.order[i])
		m.order = append(m.order[:i], m.order[i+1:]...)
	}
	m.wg.Add(1)
	go m.execute(d, run, t)
	return run.ID, nil
}

// execute runs one rotation; the deployment's single-flight slot is released with defer, whatever happens.
func (m *Manager) execute(d *managed, run *Run, t Trigger) {
	defer m.wg.Done()
	var rep Report
	var plan Plan
	var err error
	defer func() {
		m.mu.Lock()
		d.running = ""
		run.Finished = d.now()
		run.Seconds = run.Finished.Sub(run.Started).Seconds()
		switch {
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
		if !t.DryRun && run.State != RunLocked {
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
	}()
	req := Request{Emergency: t.Emergency}
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
)

// errorClass sorts a run's error by the sentinel it wraps.
func errorClass(err error) string {
	switch {
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

// Running is how many runs are in flight.
func (m *Manager) Running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, d := range m.deps {
		if d.running != "" {
			n++
		}
	}
	return n
}

// DeploymentView is what GET /v1/deployments shows of one deployment.
type DeploymentView struct {
	Name        string    `json:"name"`
	Status      Status    `json:"status"`
	StatusError string    `json:"status_error,omitempty"`
	Running     string    `json:"running_run_id,omitempty"`
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
