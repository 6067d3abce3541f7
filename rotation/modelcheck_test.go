package rotation_test

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// The model check drives the real rotation state machine through random fault schedules (Jepsen's idea in the
// small): crashes at any Store or Node call followed by a new rotator resuming, leases that expire, a rotator paused
// past its lease while another runs, nodes that will not start, start open or are stopped by hand, Vault unavailable
// for a while, store writes whose answer is lost, and emergency requests in the middle of a rotation. After every step
// that changes a node or the store it checks what must hold at every moment (modelcheck_world_test.go); once the
// faults stop, a clean rotator must end the rotation completed or rolled back with every node settled on the store's
// current keys.
//
// Replay a schedule with the seed a failure prints:
//
//	go test ./rotation/ -run TestModelCheck -modelcheck.seed=SEED -modelcheck.n=1 -v
//
// (or ROTATOR_MODELCHECK_SEED and ROTATOR_MODELCHECK_N); a longer run: -modelcheck.n=1000000 -timeout 0.

var (
	mcSeedFlag = flag.String("modelcheck.seed", "", "model check: seed of the first schedule (default: $ROTATOR_MODELCHECK_SEED, else random)")
	mcNFlag    = flag.Int("modelcheck.n", 0, "model check: number of schedules (default: $ROTATOR_MODELCHECK_N, else 10000)")
)

const mcDefaultSchedules = 10000

func TestModelCheck(t *testing.T) {
	seed, n := modelCheckConfig(t)
	t.Logf("model check: %d schedules from seed %d (replay one: -modelcheck.seed=SEED -modelcheck.n=1)", n, seed)
	start := time.Now()
	total, failed, one := runMCSchedules(seed, n)
	elapsed := time.Since(start)
	t.Logf("%d schedules in %s: %.0f schedules/s", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	t.Log(total.String())
	if n == 1 {
		t.Logf("schedule %s\n%s", one.sched, strings.Join(one.trace, "\n"))
	}
	if len(failed) == 0 {
		return
	}
	// One report per kind of violation: how often, its first seed, and that schedule shrunk with its trace.
	groups := map[string][]mcResult{}
	var kinds []string
	for _, r := range failed {
		k := mcViolationKind(r.violations[0])
		if groups[k] == nil {
			kinds = append(kinds, k)
		}
		groups[k] = append(groups[k], r)
	}
	t.Errorf("%d of %d schedules broke an invariant, in %d ways", len(failed), n, len(kinds))
	for i, k := range kinds {
		rs := groups[k]
		var seeds []string
		for _, r := range rs[:min(len(rs), 10)] {
			seeds = append(seeds, strconv.FormatUint(r.sched.seed, 10))
		}
		t.Errorf("%d schedules (seeds %s; replay one with -modelcheck.seed=SEED -modelcheck.n=1 -v): %s", len(rs), strings.Join(seeds, " "), rs[0].violations[0])
		if i < 3 {
			small := shrinkMCSchedule(rs[0].sched, rs[0].violations[0])
			r := runMCSchedule(small)
			t.Errorf("shrunk to: %s\nits trace:\n%s", small, strings.Join(r.trace, "\n"))
		}
	}
}

// modelCheckConfig reads the seed and the number of schedules from the flags, then the environment.
func modelCheckConfig(t *testing.T) (uint64, int) {
	t.Helper()
	seedText := *mcSeedFlag
	if seedText == "" {
		seedText = os.Getenv("ROTATOR_MODELCHECK_SEED")
	}
	var seed uint64
	if seedText == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		seed = binary.LittleEndian.Uint64(b[:]) >> 1
	} else {
		var err error
		if seed, err = strconv.ParseUint(seedText, 10, 64); err != nil {
			t.Fatalf("model check seed %q: %v", seedText, err)
		}
	}
	n := *mcNFlag
	if n == 0 {
		if v := os.Getenv("ROTATOR_MODELCHECK_N"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 {
				t.Fatalf("ROTATOR_MODELCHECK_N %q: want a positive number", v)
			}
		}
	}
	if n <= 0 {
		n = mcDefaultSchedules
	}
	return seed, n
}

// mcResult is what one schedule left.
type mcResult struct {
	sched      mcSchedule
	violations []string
	trace      []string
	stats      mcStats
}

// runMCSchedules runs schedules seed, seed+1, … in parallel (each is deterministic on its own, and the rotator's retry
// pauses, a few real milliseconds after an injected Vault error, overlap). It returns their summed counts, the
// schedules that broke an invariant (by seed), and the first schedule's result.
func runMCSchedules(seed uint64, n int) (total mcStats, failed []mcResult, first mcResult) {
	next := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sum mcStats
			for i := range next {
				r := runMCSchedule(genMCSchedule(seed + uint64(i)))
				sum.add(r.stats)
				if i == 0 || len(r.violations) > 0 {
					mu.Lock()
					if i == 0 {
						first = r
					}
					if len(r.violations) > 0 {
						failed = append(failed, r)
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			total.add(sum)
			mu.Unlock()
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	slices.SortFunc(failed, func(a, b mcResult) int { return cmp.Compare(a.sched.seed, b.sched.seed) })
	return total, failed, first
}

// runMCSchedule plays one schedule: its faulty rotators one after the other, then the faults stop and a clean
// rotator runs, and the end state is checked.
func runMCSchedule(s mcSchedule) mcResult {
	w, err := newMCWorld(s)
	if err != nil {
		return mcResult{sched: s, violations: []string{"setting up: " + err.Error()}}
	}
	for i, plan := range s.runs {
		p, _, err := w.run(fmt.Sprintf("r%d", i), plan)
		if p.dead || errors.Is(err, rotation.ErrLocked) {
			// A crashed process's lease (or the lease of one whose release failed) expires before the next resumes.
			w.clock.Add(mcLeaseTTL + time.Minute)
		}
	}
	w.heal()
	_, rep, err := w.run("final", mcRunPlan{})
	w.checkEnd(rep, err)
	return mcResult{sched: s, violations: w.violations, trace: w.trace, stats: w.stats}
}

// heal stops every fault: Vault answers, nodes start with their keys, and an operator starts the nodes that are
// down and restarts those that are open (the rotator reports an open node with its likely cause, and restarts it only
// when it changes its configuration: the cause, say an unreadable config file, is the operator's to fix).
func (w *mcWorld) heal() {
	w.outage, w.loseAnswer = 0, 0
	clear(w.refuseLeft)
	clear(w.loseLeft)
	for _, n := range w.nodes {
		if !n.Up() || mcIsOpen(n) {
			n.Start()
			w.tracef("the faults stop: node %s (re)started by hand", n.Name())
		}
	}
	w.clock.Add(mcLeaseTTL + time.Minute)
	w.tracef("the faults stop: %s", w.summary())
	w.check("the faults stop")
}

// checkEnd: the clean run completed the rotation or rolled it back, the journal is final and unlocked, and every node
// runs the store's current key alone, refusing retired keys and keys never issued.
func (w *mcWorld) checkEnd(rep rotation.Report, err error) {
	switch {
	case err == nil && rep.Outcome == rotation.OutcomeCompleted:
		w.stats.completed++
	case errors.Is(err, rotation.ErrRolledBack) && rep.Outcome == rotation.OutcomeRolledBack:
		w.stats.rolledBack++
	default:
		w.violate("the clean run after the faults ended %s: %s", rep.Outcome, mcErrText(err))
	}
	w.tracef("end: %s", w.summary())
	j, _ := w.journal()
	if !j.Phase.Final() || j.Owner != "" {
		w.violate("the journal ends in phase %q owned by %q, want final and unlocked", j.Phase, j.Owner)
	}
	cur, ro := w.current(), w.currentOf(rotation.SlotReadOnly)
	if w.sched.readOnly && (ro.Key.IsZero() || ro.Kind == rotation.CredentialJWT) {
		w.violate("the read-only credential ends as %q %s, want a key", ro.Kind, w.fp.Of(ro.Key))
	}
	stranger, _ := rotation.NewKey()
	for _, n := range w.nodes {
		s := n.Running()
		if w.sched.readOnly && n.Up() && !s.ReadOnlyKey.Equal(ro.Key) {
			w.violate("node %s ends with read-only key %s, want the current %s", n.Name(), w.fp.Of(s.ReadOnlyKey), w.fp.Of(ro.Key))
		}
		switch {
		case !n.Up():
			w.violate("node %s is down at the end", n.Name())
		case n.Accepts(stranger):
			w.violate("node %s is open at the end", n.Name())
		case !s.APIKey.Equal(cur.Key) || !s.AltAPIKey.IsZero():
			w.violate("node %s ends with api %s alt %s, want the current key %s alone", n.Name(), w.fp.Of(s.APIKey), w.fp.Of(s.AltAPIKey), w.fp.Of(cur.Key))
		}
		for _, k := range w.retired {
			if n.Accepts(k) {
				w.violate("node %s accepts the retired key %s at the end", n.Name(), w.fp.Of(k))
			}
		}
	}
}

// The schedule: which faults each rotator meets, by the number of its Store and Node calls (from 0).

type mcFaultKind int

const (
	faultCrashBefore mcFaultKind = iota // the process dies as it makes the call: the call never lands
	faultCrashAfter                     // the process dies once the call landed, before it sees the answer
	faultOutage                         // Vault answers 503 to the next n store calls (any rotator's)
	faultLoseAnswer                     // the next store write lands but its caller sees an error
	faultStop                           // an operator stops a node
	faultRefuse                         // a node fails to start, its next n starts (n < 0: until the faults stop)
	faultLoseKeys                       // a node starts open, without its keys, its next n starts
	faultExpire                         // the clock jumps past the lease; nobody takes it
	faultPause                          // the rotator freezes in the call past its lease while another runs (sub)
	faultArrive                         // an emergency request arrives while the rotator holds its lease
	numFaultKinds
)

var mcFaultNames = [numFaultKinds]string{"crash before a call", "crash after a call", "vault outage", "lost answer",
	"node stopped by hand", "node refuses to start", "node starts open", "lease expiry", "pause past the lease",
	"emergency arrives"}

func (k mcFaultKind) String() string { return mcFaultNames[k] }

type mcFault struct {
	at        int // the rotator's call (0: its first)
	kind      mcFaultKind
	node      int
	n         int
	after     bool      // faultPause: freeze once the call answered (reads only; see proc.call)
	emergency bool      // faultPause: the rotator that runs meanwhile was asked for an emergency
	sub       []mcFault // faultPause: that rotator's own faults
}

type mcRunPlan struct {
	emergency bool
	faults    []mcFault
}

type mcSchedule struct {
	seed         uint64
	nodes        int
	internalAuth bool
	readOnly     bool // rotate the read-only slot too, through the read-JWT bridge
	grace        time.Duration
	runs         []mcRunPlan
}

// genMCSchedule derives a schedule from its seed: 1 to 3 nodes, 1 to 3 faulty rotators with 0 to 3 faults each.
func genMCSchedule(seed uint64) mcSchedule {
	rng := mrand.New(mrand.NewPCG(seed, 0x9e3779b97f4a7c15))
	s := mcSchedule{seed: seed, nodes: 1 + rng.IntN(3), internalAuth: rng.IntN(4) == 0, readOnly: rng.IntN(4) == 0}
	if rng.IntN(2) == 0 {
		s.grace = 10 * time.Minute
	}
	for range 1 + rng.IntN(3) {
		s.runs = append(s.runs, genMCRun(rng, s.nodes, true))
	}
	return s
}

func genMCRun(rng *mrand.Rand, nodes int, nested bool) mcRunPlan {
	p := mcRunPlan{emergency: rng.IntN(5) == 0}
	faults := rng.IntN(4)
	if !nested {
		faults = rng.IntN(2)
	}
	for range faults {
		p.faults = append(p.faults, genMCFault(rng, nodes, nested))
	}
	slices.SortStableFunc(p.faults, func(a, b mcFault) int { return a.at - b.at })
	return p
}

// mcFaultWeights: how often each kind is drawn.
var mcFaultWeights = [numFaultKinds]int{3, 3, 2, 1, 1, 2, 1, 1, 3, 1}

func genMCFault(rng *mrand.Rand, nodes int, nested bool) mcFault {
	total := 0
	for k, wgt := range mcFaultWeights {
		if nested || (mcFaultKind(k) != faultPause && mcFaultKind(k) != faultArrive) {
			total += wgt
		}
	}
	pick := rng.IntN(total)
	var kind mcFaultKind
	for k, wgt := range mcFaultWeights {
		if !nested && (mcFaultKind(k) == faultPause || mcFaultKind(k) == faultArrive) {
			continue
		}
		if pick < wgt {
			kind = mcFaultKind(k)
			break
		}
		pick -= wgt
	}
	// A clean rotation makes about 12 + 27 calls per node; faults land anywhere in it.
	f := mcFault{at: rng.IntN(15 + 30*nodes), kind: kind, node: rng.IntN(nodes)}
	switch kind {
	case faultOutage:
		f.n = 1 + rng.IntN(4)
	case faultRefuse, faultLoseKeys:
		f.n = []int{1, 1, 2, -1}[rng.IntN(4)]
	case faultPause:
		f.after = rng.IntN(2) == 0
		sub := genMCRun(rng, nodes, false)
		f.emergency, f.sub = sub.emergency, sub.faults
	}
	return f
}

func (f mcFault) String() string {
	s := fmt.Sprintf("at call %d: %s", f.at, f.kind)
	switch f.kind {
	case faultOutage:
		s += fmt.Sprintf(" for %d calls", f.n)
	case faultStop:
		s += fmt.Sprintf(" (node %d)", f.node)
	case faultRefuse, faultLoseKeys:
		s += fmt.Sprintf(" (node %d, %s)", f.node, mcStarts(f.n))
	case faultPause:
		if f.after {
			s += " (after the call)"
		}
		s += fmt.Sprintf("; meanwhile %s", mcRunPlan{emergency: f.emergency, faults: f.sub})
	}
	return s
}

func (p mcRunPlan) String() string {
	s := "a scheduled rotator"
	if p.emergency {
		s = "an emergency rotator"
	}
	if len(p.faults) == 0 {
		return s + " without faults"
	}
	var fs []string
	for _, f := range p.faults {
		fs = append(fs, f.String())
	}
	return s + " [" + strings.Join(fs, "; ") + "]"
}

func (s mcSchedule) String() string {
	out := fmt.Sprintf("seed %d: %d nodes, internal auth %v, read-only %v, grace %s", s.seed, s.nodes, s.internalAuth, s.readOnly, s.grace)
	for i, r := range s.runs {
		out += fmt.Sprintf("\n  r%d: %s", i, r)
	}
	return out
}

// shrinkMCSchedule removes what the failure does not need (rotators, faults, options) while the schedule still breaks an
// invariant of the same kind as first (twice in a row, so a shrunk schedule replays).
func shrinkMCSchedule(s mcSchedule, first string) mcSchedule {
	kind := mcViolationKind(first)
	fails := func(c mcSchedule) bool {
		for range 2 {
			r := runMCSchedule(c)
			if !slices.ContainsFunc(r.violations, func(v string) bool { return mcViolationKind(v) == kind }) {
				return false
			}
		}
		return true
	}
	for changed := true; changed; {
		changed = false
		for _, c := range smallerMCSchedules(s) {
			if fails(c) {
				s, changed = c, true
				break
			}
		}
	}
	return s
}

// mcViolationKind is a violation's text without its numbers and names, to tell one kind of failure from another.
func mcViolationKind(v string) string {
	var b strings.Builder
	for _, f := range strings.Fields(v) {
		if strings.ContainsAny(f, "0123456789") {
			continue
		}
		b.WriteString(f + " ")
	}
	return b.String()
}

// smallerMCSchedules lists the schedules one step simpler than s.
func smallerMCSchedules(s mcSchedule) []mcSchedule {
	var out []mcSchedule
	with := func(f func(*mcSchedule)) {
		c := s
		c.runs = cloneMCRuns(s.runs)
		f(&c)
		out = append(out, c)
	}
	for i := range s.runs {
		with(func(c *mcSchedule) { c.runs = slices.Delete(c.runs, i, i+1) })
	}
	for i, r := range s.runs {
		for k, f := range r.faults {
			with(func(c *mcSchedule) { c.runs[i].faults = slices.Delete(c.runs[i].faults, k, k+1) })
			for m := range f.sub {
				with(func(c *mcSchedule) { c.runs[i].faults[k].sub = slices.Delete(c.runs[i].faults[k].sub, m, m+1) })
			}
			if f.emergency {
				with(func(c *mcSchedule) { c.runs[i].faults[k].emergency = false })
			}
			if f.n > 1 || f.n < 0 {
				with(func(c *mcSchedule) { c.runs[i].faults[k].n = 1 })
			}
		}
		if r.emergency {
			with(func(c *mcSchedule) { c.runs[i].emergency = false })
		}
	}
	if s.internalAuth {
		with(func(c *mcSchedule) { c.internalAuth = false })
	}
	if s.readOnly {
		with(func(c *mcSchedule) { c.readOnly = false })
	}
	if s.grace != 0 {
		with(func(c *mcSchedule) { c.grace = 0 })
	}
	if s.nodes > 1 {
		with(func(c *mcSchedule) {
			c.nodes--
			for i := range c.runs {
				c.runs[i].faults = dropMCNode(c.runs[i].faults, c.nodes)
			}
		})
	}
	return out
}

func cloneMCRuns(runs []mcRunPlan) []mcRunPlan {
	out := slices.Clone(runs)
	for i := range out {
		out[i].faults = slices.Clone(out[i].faults)
		for k := range out[i].faults {
			out[i].faults[k].sub = slices.Clone(out[i].faults[k].sub)
		}
	}
	return out
}

// dropMCNode removes the faults of node index gone (and of the nodes after it).
func dropMCNode(fs []mcFault, gone int) []mcFault {
	fs = slices.DeleteFunc(fs, func(f mcFault) bool {
		return f.node >= gone && (f.kind == faultStop || f.kind == faultRefuse || f.kind == faultLoseKeys)
	})
	for i := range fs {
		fs[i].sub = dropMCNode(fs[i].sub, gone)
	}
	return fs
}

// mcStats counts what the schedules exercised.
type mcStats struct {
	fired                                    [numFaultKinds]int
	calls, applies, publishes                int
	outageCalls, lostAnswers, skipped        int
	fenced, escalated, completed, rolledBack int
}

func (s *mcStats) add(o mcStats) {
	for k := range s.fired {
		s.fired[k] += o.fired[k]
	}
	s.calls += o.calls
	s.applies += o.applies
	s.publishes += o.publishes
	s.outageCalls += o.outageCalls
	s.lostAnswers += o.lostAnswers
	s.skipped += o.skipped
	s.fenced += o.fenced
	s.escalated += o.escalated
	s.completed += o.completed
	s.rolledBack += o.rolledBack
}

func (s mcStats) String() string {
	var fired []string
	for k, n := range s.fired {
		fired = append(fired, fmt.Sprintf("%s %d", mcFaultKind(k), n))
	}
	return fmt.Sprintf("faults fired: %s; %d port calls, %d node restarts, %d publishes, %d store calls failed by an outage, "+
		"%d answers lost, %d interruptions skipped (in a cut, or between a fence and its side effect); %d paused rotators stopped by their fence, %d escalations; "+
		"the clean run completed %d and rolled back %d",
		strings.Join(fired, ", "), s.calls, s.applies, s.publishes, s.outageCalls, s.lostAnswers, s.skipped, s.fenced,
		s.escalated, s.completed, s.rolledBack)
}
