package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// fleet is a Manager over n one-node deployments (dep-0, dep-1, ...) whose node blocks at the first restart of a
// run until the test lets it go on (one receive from gate per run). It counts the runs inside a rotation (from that
// first restart until the run's Finished hook), so "at most N at once" is observed by counting, never by timing.
type fleet struct {
	t      *testing.T
	m      *rotation.Manager
	cancel context.CancelFunc
	store  *rotationtest.Store
	nodes  map[string]*rotationtest.Node
	gate   chan struct{}

	mu       sync.Mutex
	inside   int
	most     int
	entered  []string // deployments in the order their run reached its first restart
	counted  map[string]bool
	finished map[string]rotation.Run
}

func newFleet(t *testing.T, n, maxParallel int) *fleet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{t: t, cancel: cancel, store: rotationtest.NewStore(), nodes: map[string]*rotationtest.Node{},
		gate: make(chan struct{}), counted: map[string]bool{}, finished: map[string]rotation.Run{}}
	f.m = rotation.NewManager(ctx, nil, rotation.Hooks{Finished: func(run rotation.Run) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.counted[run.Deployment] {
			f.inside--
		}
		f.finished[run.Deployment] = run
	}})
	f.m.SetMaxParallel(maxParallel)
	t.Cleanup(func() {
		cancel()
		close(f.gate) // whatever still blocks goes on
		f.m.Wait()
	})
	clk := &clock{t: testEpoch(t)}
	fp, _ := rotation.NewFingerprinter([]byte("test-fingerprint-secret"))
	for i := range n {
		name := fmt.Sprintf("dep-%d", i)
		k, err := rotation.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Publish(context.Background(), name, rotation.SlotAdmin, rotation.KeyRecord{Key: k, RotationID: "adopted", Since: clk.Now()}, 0); err != nil {
			t.Fatal(err)
		}
		node := rotationtest.NewNode(name+"-q0", rotation.Slots{APIKey: k})
		node.OnApply = func() {
			f.mu.Lock()
			first := !f.counted[name]
			if first {
				f.counted[name] = true
				f.inside++
				f.most = max(f.most, f.inside)
				f.entered = append(f.entered, name)
			}
			f.mu.Unlock()
			if first {
				<-f.gate
			}
		}
		f.nodes[name] = node
		r, err := rotation.New(f.store, []rotation.Node{node}, rotation.Options{Deployment: name, LeaseTTL: 3600e9, ReadyTimeout: 1e9,
			Fingerprints: fp, Clock: clk, Observe: f.m.Observer(name)})
		if err != nil {
			t.Fatal(err)
		}
		f.m.Add(r, nil)
	}
	return f
}

func (f *fleet) start(dep string, t rotation.Trigger) string {
	f.t.Helper()
	id, err := f.m.Start(dep, t)
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fleet) state(id string) rotation.RunState {
	run, _ := f.m.Get(id)
	return run.State
}

// progress is how many runs reached their first restart and how many finished.
func (f *fleet) progress() (entered, finished int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entered), len(f.finished)
}

// releaseOne lets one blocked run go on, then waits until it finished and until entered runs reached their first
// restart (the ones the freed slot let in).
func (f *fleet) releaseOne(entered, finished int) {
	f.t.Helper()
	f.gate <- struct{}{}
	waitFor(f.t, func() bool { e, d := f.progress(); return e == entered && d == finished })
}

// At most max_parallel deployments rotate at once; the others wait, queued, in the order asked, each holding its
// deployment's single flight.
func TestManagerBoundsParallelRuns(t *testing.T) {
	const n, limit = 6, 2
	f := newFleet(t, n, limit)
	var ids []string
	for i := range n {
		ids = append(ids, f.start(fmt.Sprintf("dep-%d", i), rotation.Trigger{Actor: "schedule"}))
	}
	for i, id := range ids {
		want := rotation.RunQueued
		if i < limit {
			want = rotation.RunRunning
		}
		if got := f.state(id); got != want && !(want == rotation.RunRunning && got.Final()) {
			t.Errorf("run %d: %s, want %s", i, got, want)
		}
	}
	if f.m.Queued() != n-limit {
		t.Errorf("Queued() = %d, want %d", f.m.Queued(), n-limit)
	}
	var busy *rotation.BusyError
	if _, err := f.m.Start("dep-5", rotation.Trigger{Actor: "api:ops"}); !errors.As(err, &busy) || busy.RunID != ids[5] {
		t.Errorf("start of a queued deployment: %v, want busy naming %s", err, ids[5])
	}
	views := f.m.Deployments(context.Background())
	if !views[5].Queued || views[5].Running != ids[5] || views[0].Queued {
		t.Errorf("deployments: dep-0 queued %v, dep-5 queued %v running %q", views[0].Queued, views[5].Queued, views[5].Running)
	}
	waitFor(t, func() bool { e, _ := f.progress(); return e == limit })
	for done := 1; done <= n; done++ {
		f.releaseOne(min(limit+done, n), done)
		f.mu.Lock()
		most := f.most
		f.mu.Unlock()
		if most > limit {
			t.Fatalf("%d runs rotated at once, bound %d", most, limit)
		}
	}
	if f.most != limit {
		t.Errorf("at most %d at once, want exactly %d (the bound, reached)", f.most, limit)
	}
	if want := []string{"dep-2", "dep-3", "dep-4", "dep-5"}; !slices.Equal(f.entered[limit:], want) {
		t.Errorf("queued runs began in the order %v, want %v", f.entered[limit:], want)
	}
	for dep, run := range f.finished {
		if run.State != rotation.RunCompleted {
			t.Errorf("%s: %s (%s)", dep, run.State, run.Error)
		}
	}
	if f.m.Queued() != 0 || f.m.Running() != 0 {
		t.Errorf("after the runs: %d queued, %d running", f.m.Queued(), f.m.Running())
	}
}

// An emergency rotation goes ahead of every non-emergency run waiting (behind emergencies asked before it); an
// emergency asked for a deployment whose scheduled run is still queued makes that run the emergency, moved ahead.
func TestManagerEmergencyJumpsTheQueue(t *testing.T) {
	f := newFleet(t, 5, 1)
	f.start("dep-0", rotation.Trigger{Actor: "schedule"})
	waitFor(t, func() bool { e, _ := f.progress(); return e == 1 })
	f.start("dep-1", rotation.Trigger{Actor: "schedule"})
	scheduled := f.start("dep-2", rotation.Trigger{Actor: "schedule"})
	e1 := f.start("dep-3", rotation.Trigger{Actor: "api:ops", Emergency: true})
	if got := f.state(e1); got != rotation.RunQueued {
		t.Errorf("emergency while the slot is taken: %s, want queued (emergencies wait for a slot, first in line)", got)
	}
	if id := f.start("dep-2", rotation.Trigger{Actor: "api:oncall", Emergency: true}); id != scheduled {
		t.Errorf("emergency for dep-2, whose scheduled run is queued: run %s, want that run (%s)", id, scheduled)
	}
	if run, _ := f.m.Get(scheduled); !run.Emergency || run.Actor != "api:oncall" || run.State != rotation.RunQueued {
		t.Errorf("dep-2's queued run after the emergency: emergency %v, actor %q, %s", run.Emergency, run.Actor, run.State)
	}
	var busy *rotation.BusyError
	if _, err := f.m.Start("dep-2", rotation.Trigger{Actor: "api:ops", Emergency: true}); !errors.As(err, &busy) || busy.RunID != scheduled {
		t.Errorf("a second emergency for dep-2: %v, want busy naming %s", err, scheduled)
	}
	if _, err := f.m.Start("dep-1", rotation.Trigger{Actor: "api:ops"}); !errors.As(err, &busy) {
		t.Errorf("a plain request for dep-1, queued: %v, want busy", err)
	}
	f.start("dep-4", rotation.Trigger{Actor: "api:ops", Emergency: true})
	for done := 1; done <= 5; done++ {
		f.releaseOne(min(done+1, 5), done)
	}
	if want := []string{"dep-0", "dep-3", "dep-2", "dep-4", "dep-1"}; !slices.Equal(f.entered, want) {
		t.Errorf("runs began in the order %v, want %v", f.entered, want)
	}
	if run := f.finished["dep-2"]; !run.Emergency || run.State != rotation.RunCompleted {
		t.Errorf("dep-2's run: emergency %v, %s (%s)", run.Emergency, run.State, run.Error)
	}
}

// A run still queued when the daemon stops ends "cancelled" having done nothing: no lease in the store, no restart,
// no failure counted against its deployment.
func TestManagerStopCancelsQueuedRuns(t *testing.T) {
	f := newFleet(t, 2, 1)
	f.start("dep-0", rotation.Trigger{Actor: "schedule"})
	waitFor(t, func() bool { e, _ := f.progress(); return e == 1 })
	queued := f.start("dep-1", rotation.Trigger{Actor: "schedule"})
	f.cancel()
	waitFor(t, func() bool { return f.state(queued) == rotation.RunCancelled })
	run, _ := f.m.Get(queued)
	if run.ErrorClass != rotation.ClassCancelled || run.Error == "" || !run.RunningSince.IsZero() || len(run.Events) != 0 {
		t.Errorf("cancelled run: class %q, error %q, running since %s, %d events", run.ErrorClass, run.Error, run.RunningSince, len(run.Events))
	}
	if j, ver, err := f.store.ReadJournal(context.Background(), "dep-1"); err != nil || ver != 0 || j.Owner != "" {
		t.Errorf("dep-1's journal: version %d, owner %q, %v: want none written", ver, j.Owner, err)
	}
	if r := f.nodes["dep-1"].Restarts(); r != 0 {
		t.Errorf("dep-1's node restarted %d times", r)
	}
	f.gate <- struct{}{} // the running one stops at its next safe point
	f.m.Wait()
	for _, v := range f.m.Deployments(context.Background()) {
		if v.Name == "dep-1" && (v.LastRun != "" || v.Running != "") {
			t.Errorf("dep-1 after stop: last run %q, running %q", v.LastRun, v.Running)
		}
	}
	if _, err := f.m.Start("dep-1", rotation.Trigger{}); err == nil {
		t.Error("a stopped manager started a run")
	}
}

// A dry run restarts nothing and takes no slot: it is answered while every slot is taken.
func TestManagerDryRunTakesNoSlot(t *testing.T) {
	f := newFleet(t, 2, 1)
	f.start("dep-0", rotation.Trigger{Actor: "schedule"})
	waitFor(t, func() bool { e, _ := f.progress(); return e == 1 })
	plan := f.start("dep-1", rotation.Trigger{Actor: "api:ops", DryRun: true})
	waitFor(t, func() bool { return f.state(plan).Final() })
	if got := f.state(plan); got != rotation.RunPlanned {
		t.Errorf("dry run: %s, want planned", got)
	}
	f.releaseOne(1, 2)
}
