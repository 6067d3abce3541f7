package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/harness"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
	"github.com/qdrantrotator/rotator/vaultsync"
)

// BenchmarkFleet measures daemon.max_parallel: 50 single-node deployments (file mode, grace 0) whose keys are all
// older than their max_age when a `rotator daemon` process starts, so every schedule falls due at its first poll.
// For each max_parallel p (1, 4, 8; one daemon each, on the same nodes and Vault) it takes the wall time from the
// first scheduled run asked for to the last one finished (the daemon's own timestamps, GET /v1/rotations), then
// rotates 3 deployments alone through the API with the same daemon, the slowest of which is the baseline:
//
//	wall / (ceil(50 / p) x slowest single rotation)    target <= 1.2
//
// and the daemon's peak RSS (/proc) and peak goroutines (go_goroutines in /metrics) over the fleet's run. It fails
// when a run did not complete, or when the runs' running_since..finished show more than p rotating at once. Beside it,
// p bare restarts at once against one alone (no rotator) show what the Docker Engine and the machine themselves
// lose to parallel restarts: a ratio above 1 that this factor explains is the engine's, not the daemon's queue.
//
// ROTATOR_BENCH_FLEET (deployments, default 50) and ROTATOR_BENCH_FLEET_PARALLEL (default "1,4,8") shorten a
// development run: ROTATOR_BENCH_FLEET=3 ROTATOR_BENCH_FLEET_PARALLEL=2 takes 2 minutes on a busy 2-core machine
// (8 deployments and 1,4,8: 6 minutes). The full run is bounded by ~50/p minutes per p plus 2 (then it fails).
func BenchmarkFleet(b *testing.B) {
	n := benchEnvInts(b, "ROTATOR_BENCH_FLEET", []int{50})[0]
	parallel := benchEnvInts(b, "ROTATOR_BENCH_FLEET_PARALLEL", []int{1, 4, 8})
	bin := buildRotator(b)
	fl := newFleetBed(b, n)
	for i := 0; i < b.N; i++ {
		for _, p := range parallel {
			alone, together := fl.bareRestarts(1), fl.bareRestarts(min(p, n))
			r := fl.run(bin, p)
			rounds := (n + p - 1) / p
			ratio := r.wall.Seconds() / (float64(rounds) * r.slowest.Seconds())
			verdict := ""
			if ratio > 1.2 {
				verdict = "  GOAL MISSED"
			}
			b.ReportMetric(ratio, fmt.Sprintf("ratio-p%d", p))
			b.ReportMetric(float64(r.peakRSS)/(1<<20), fmt.Sprintf("MiB-rss-p%d", p))
			b.ReportMetric(float64(r.peakGoroutines), fmt.Sprintf("goroutines-p%d", p))
			b.ReportMetric(together.Seconds()/alone.Seconds(), fmt.Sprintf("engine-x-p%d", p))
			fmt.Printf("fleet of %d single-node deployments due together (each node starts in Docker's time + %s), max_parallel %d: wall %s, slowest single rotation %s (of %d alone, mean %s), %d rounds, ratio %.3f (target <= 1.2)%s; daemon peak RSS %.1f MiB, peak goroutines %d; the engine alone: %d bare restarts at once %s vs one %s (x%.2f)\n",
				n, fleetStartDelay(b), p, r.wall.Round(time.Millisecond), r.slowest.Round(time.Millisecond), len(r.singles), r.meanSingle().Round(time.Millisecond),
				rounds, ratio, verdict, float64(r.peakRSS)/(1<<20), r.peakGoroutines, min(p, n), together.Round(time.Millisecond), alone.Round(time.Millisecond), together.Seconds()/alone.Seconds())
		}
	}
}

// fleetBed is n one-node deployments, fleet-00 ..., on stand-in containers and the Vault dev server.
type fleetBed struct {
	b     *testing.B
	n     int
	dir   string
	vault *vaultdev.Server
	store *vaultsync.Store
	names []string // deployment i's container
	nodes []*harness.Node
}

// fleetStartDelay is how long each node takes to start, beside Docker's own start: Qdrant loads its collections
// before it serves (the stand-in starts at once unless told). 50 nodes share this 2-core machine, so with an instant
// start the fleet's run measures how the Docker Engine copes with parallel restarts (printed beside it), not the
// daemon's queue. ROTATOR_BENCH_FLEET_START_DELAY sets it (a Go duration; default 2s; 0s: instant).
func fleetStartDelay(b *testing.B) time.Duration {
	v := os.Getenv("ROTATOR_BENCH_FLEET_START_DELAY")
	if v == "" {
		return 2 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		b.Fatalf("ROTATOR_BENCH_FLEET_START_DELAY=%q: want a Go duration >= 0 such as 2s", v)
	}
	return d
}

// fleetToken is the bench's admin token for the daemons' API (given in the environment, never a secret elsewhere).
const fleetToken = "fleet-bench-admin-token"

func fleetDeployment(i int) string { return fmt.Sprintf("fleet-%02d", i) }

func newFleetBed(b *testing.B, n int) *fleetBed {
	b.Helper()
	fl := &fleetBed{b: b, n: n, dir: b.TempDir(), vault: vaultdev.StartT(b)}
	h := harness.NewT(b)
	image := h.StandinImageT(b)
	var err error
	fl.store, err = vaultsync.New(vaultsync.Options{Address: fl.vault.Addr, Token: fl.vault.Token, Mount: "secret", Prefix: "qdrant"})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fl.dir, "token"), []byte(fl.vault.Token+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	tag := randomHex(3)
	specs := make([]harness.NodeSpec, n)
	for i := range n {
		key, err := rotation.NewKey()
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("fleet-%s-%02d", tag, i)
		file := filepath.Join(b.TempDir(), "local.yaml")
		if err := os.WriteFile(file, []byte("service:\n  api_key: "+key.Reveal()+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		specs[i] = harness.NodeSpec{Name: name, Image: image, Binds: []string{file + ":/qdrant/config/local.yaml"}, Env: []string{"STANDIN_START_DELAY=" + fleetStartDelay(b).String()}}
		fl.names = append(fl.names, name)
		if _, err := fl.store.Publish(context.Background(), fleetDeployment(i), rotation.SlotAdmin, rotation.KeyRecord{Key: key, Since: time.Now(), RotationID: "adopted"}, 0); err != nil {
			b.Fatal(err)
		}
	}
	// Eight containers start at a time; the harness removes them all when the benchmark ends.
	fl.nodes = make([]*harness.Node, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			if fl.nodes[i], err = h.StartNode(context.Background(), spec); err != nil {
				errs <- fmt.Errorf("start %s: %w", spec.Name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return fl
}

// bareRestarts restarts k of the containers at once (stop, start, wait until each answers), without the rotator:
// the Docker Engine's and the machine's own cost of k restarts at once, against which the fleet's ratio is read.
func (fl *fleetBed) bareRestarts(k int) time.Duration {
	fl.b.Helper()
	ctx := context.Background()
	errs := make(chan error, k)
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range fl.nodes[:k] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.Stop(ctx, true); err != nil {
				errs <- err
				return
			}
			errs <- n.Start(ctx)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			fl.b.Fatalf("bare restart: %v", err)
		}
	}
	return took
}

// age re-publishes every deployment's current key as two hours old: older than its max_age, so it is due.
func (fl *fleetBed) age() {
	fl.b.Helper()
	ctx := context.Background()
	for i := range fl.n {
		cur, err := fl.store.ReadCurrent(ctx, fleetDeployment(i), rotation.SlotAdmin)
		if err != nil {
			fl.b.Fatal(err)
		}
		cur.Since, cur.RotationID = time.Now().Add(-2*time.Hour), "bench-aged"
		if _, err := fl.store.Publish(ctx, fleetDeployment(i), rotation.SlotAdmin, cur, cur.Version); err != nil {
			fl.b.Fatalf("age %s: %v", fleetDeployment(i), err)
		}
	}
}

// config writes the daemon's config for max_parallel p and returns its path.
func (fl *fleetBed) config(p int) string {
	fl.b.Helper()
	var c strings.Builder
	fmt.Fprintf(&c, "vault: {address: %s, token_file: token, mount: secret, prefix: qdrant}\n", fl.vault.Addr)
	fmt.Fprintf(&c, "daemon:\n  poll_interval: 3s\n  max_parallel: %d\n  tokens: [{name: bench, role: admin, env: ROTATOR_BENCH_TOKEN}]\ndeployments:\n", p)
	for i, name := range fl.names {
		fmt.Fprintf(&c, "  - {name: %s, mode: file, containers: [%s], config_path: /qdrant/config/local.yaml, grace: 0s, ready_timeout: 30s, stop_timeout: 10s, max_age: 1h}\n",
			fleetDeployment(i), name)
	}
	path := filepath.Join(fl.dir, fmt.Sprintf("rotator-p%d.yml", p))
	if err := os.WriteFile(path, []byte(c.String()), 0o600); err != nil {
		fl.b.Fatal(err)
	}
	return path
}

// fleetResult is one max_parallel's measurement.
type fleetResult struct {
	wall           time.Duration // first scheduled run asked for -> last one finished
	singles        []time.Duration
	slowest        time.Duration
	peakRSS        int64
	peakGoroutines int
}

func (r fleetResult) meanSingle() time.Duration {
	var sum time.Duration
	for _, d := range r.singles {
		sum += d
	}
	return sum / time.Duration(max(len(r.singles), 1))
}

// run ages every key, starts a daemon with max_parallel p, waits until each deployment's scheduled run has ended
// (sampling the daemon's RSS and goroutines meanwhile), then rotates three deployments alone through its API.
func (fl *fleetBed) run(bin string, p int) fleetResult {
	b := fl.b
	b.Helper()
	fl.age()
	d := launchDaemon(b, fl.config(p), daemonOpts{bin: bin, env: map[string]string{"ROTATOR_BENCH_TOKEN": fleetToken}})
	pid := d.cmd.Process.Pid
	var r fleetResult
	deadline := time.Now().Add(time.Duration(fl.n)*time.Minute/time.Duration(p) + 2*time.Minute)
	var runs []rotation.Run
	for tick := 0; ; tick++ {
		r.peakRSS = max(r.peakRSS, procRSS(b, pid))
		if tick%5 == 0 { // /metrics twice a second: the scrape itself costs the daemon some work
			r.peakGoroutines = max(r.peakGoroutines, sampleDaemon(b, d, pid, fleetToken).goroutines)
		}
		var list struct{ Rotations []rotation.Run }
		if code, _ := d.request(b, http.MethodGet, "/v1/rotations", fleetToken, "", &list); code != http.StatusOK {
			b.Fatalf("GET /v1/rotations: HTTP %d", code)
		}
		runs = list.Rotations
		if ended := countEnded(runs); ended == fl.n {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("max_parallel %d: %d of %d scheduled runs ended in time; the daemon's output:\n%s", p, ended, fl.n, d.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var first, last time.Time
	for _, run := range runs {
		if run.State != rotation.RunCompleted {
			b.Fatalf("max_parallel %d: %s's run ended %s: %s", p, run.Deployment, run.State, run.Error)
		}
		if first.IsZero() || run.Started.Before(first) {
			first = run.Started
		}
		if run.Finished.After(last) {
			last = run.Finished
		}
	}
	r.wall = last.Sub(first)
	if most := mostAtOnce(runs); most > p || (p > 1 && most < 2 && fl.n > 1) {
		b.Fatalf("max_parallel %d: %d runs rotated at once", p, most)
	}
	for i := range min(3, fl.n) {
		var started struct{ ID string }
		if code, _ := d.request(b, http.MethodPost, "/v1/deployments/"+fleetDeployment(i)+"/rotations", fleetToken, `{}`, &started); code != http.StatusAccepted {
			b.Fatalf("POST a single rotation of %s: HTTP %d", fleetDeployment(i), code)
		}
		run := d.waitRun(b, fleetToken, started.ID)
		if run.State != rotation.RunCompleted {
			b.Fatalf("single rotation of %s ended %s: %s", fleetDeployment(i), run.State, run.Error)
		}
		took := time.Duration(run.Seconds * float64(time.Second))
		r.singles = append(r.singles, took)
		r.slowest = max(r.slowest, took)
	}
	if code := d.stop(b); code != 0 {
		b.Fatalf("daemon exited %d:\n%s", code, d.out)
	}
	return r
}

// mostAtOnce is the most runs that were rotating (running_since to finished) at one instant.
func mostAtOnce(runs []rotation.Run) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, r := range runs {
		edges = append(edges, edge{r.RunningSince, 1}, edge{r.Finished, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // an end before a start at the same instant: a slot handed on
	})
	now, most := 0, 0
	for _, e := range edges {
		now += e.delta
		most = max(most, now)
	}
	return most
}

// countEnded is how many deployments' scheduled runs have ended (each deployment runs once here).
func countEnded(runs []rotation.Run) int {
	n := 0
	for _, run := range runs {
		if run.Actor == "schedule" && run.State.Final() {
			n++
		}
	}
	return n
}
