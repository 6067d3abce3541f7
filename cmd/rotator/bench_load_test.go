package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/loadclient"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// BenchmarkClientLoad plays 8 consumers at once against three stand-in nodes in file mode while the daemon (a
// separate `rotator daemon` process) runs a *scheduled* rotation: a max_age set so that the key falls due a few
// seconds after the load begins. Each stream sends a request, waits 0.5 ms, and so on, round-robin over the nodes.
// Every request carries the key the consumer reads from the env file a real `vault agent` renders (shipped template,
// render interval 2s; the `consumers` section says lag 3s, and the grace is 6s): a stat of the file at most every
// 5 ms, a read when it changed, and on a 401/403 a re-read and one retry (the rejection counted all the same). The
// same load then runs through bare restarts of the same nodes (the 6 restarts the rotation makes: each node twice,
// waiting until it accepts the key), so the rotation's own cost in connection failures shows apart from its
// restarts'. Printed: requests, 401s, 403s, connection failures and the p50/p99 latency before, during and after the
// rotation and during the bare restarts. Targets: 0 rejections, >= 10,000 requests during the rotation (the
// benchmark fails otherwise). The load is bounded: at most 1,000,000 requests and 5 minutes.
func BenchmarkClientLoad(b *testing.B) {
	const (
		streams    = 8
		minDuring  = 10000
		beforeFor  = 6 * time.Second // the key falls due this long after the load starts
		afterFor   = 5 * time.Second
		render     = "2s"
		grace      = "6s"
		maxLoad    = 1_000_000
		maxLoadFor = 5 * time.Minute
	)
	bin := buildRotator(b)
	f := newFixture(b, fixtureOpts{nodes: 3, mode: "file", grace: grace, fixedPorts: true,
		top:   "daemon:\n  poll_interval: 200ms\n  tokens:\n    - {name: bench, role: admin, file: admin.token}\n",
		extra: "    consumers:\n      agent: {render_interval: " + render + ", reload: 1s}\n"})
	token := randomHex(16)
	if err := os.WriteFile(filepath.Join(f.dir, "admin.token"), []byte(token+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	if code, out := f.rotator("check"); code != exitOK {
		b.Fatalf("rotator check (grace against the consumers' lag) exited %d:\n%s", code, out)
	}
	agent := f.startVaultAgent(render)
	base, err := os.ReadFile(f.config)
	if err != nil {
		b.Fatal(err)
	}
	var targets []string
	for _, p := range f.restPorts {
		targets = append(targets, fmt.Sprintf("http://127.0.0.1:%d", p))
	}
	ctx := context.Background()
	var total loadclient.Stats
	var bareFailures, rotationFailures int
	keys := []rotation.Key{f.k1} // every key the nodes had, for the leak checks
	for i := 0; i < b.N; i++ {
		key := &loadclient.FileKey{Path: agent.envFile, Parse: envFileKey, MinInterval: 5 * time.Millisecond}
		load, err := loadclient.Start(ctx, loadclient.Options{Targets: targets, Streams: streams, Pause: 500 * time.Microsecond,
			MaxRequests: maxLoad, MaxDuration: maxLoadFor, Key: key})
		if err != nil {
			b.Fatal(err)
		}
		// The key falls due beforeFor from now: a max_age equal to its age then (whole seconds, rounded up).
		cur := f.current()
		maxAge := (time.Since(cur.Since) + beforeFor).Truncate(time.Second) + time.Second
		cfg := string(base) + fmt.Sprintf("    max_age: %s\n", maxAge)
		if err := os.WriteFile(f.config, []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		d := f.startDaemon(daemonOpts{bin: bin})
		run := d.waitScheduledRun(b, token, 120*time.Second)
		if code := d.stop(b); code != exitOK {
			b.Fatalf("daemon exited %d:\n%s", code, d.out)
		}
		if run.State != "completed" || run.Actor != "schedule" {
			b.Fatalf("the scheduled run %s ended %s (actor %s): %s", run.ID, run.State, run.Actor, run.Error)
		}
		f.k1 = f.current().Key
		keys = append(keys, f.k1)
		time.Sleep(time.Until(run.Finished.Add(afterFor)))

		bareStart := time.Now()
		f.bareRollingRestarts(ctx)
		bareEnd := time.Now()
		res := load.Stop()
		if res.Bounded {
			b.Fatalf("the load client reached its bound (%d requests or %s) before the phases ended", maxLoad, maxLoadFor)
		}

		phases := []struct {
			name     string
			from, to time.Time
		}{
			{"before the rotation", res.Start, run.began()},
			{"during the rotation", run.began(), run.Finished},
			{"after the rotation", run.Finished, run.Finished.Add(afterFor)},
			{"bare restarts", bareStart, bareEnd},
		}
		all := res.All()
		reads, changes := key.Counts()
		fmt.Printf("client load (3 nodes, file mode, %d streams, max_age %s falling due, Vault Agent render interval %s < grace %s):\n",
			streams, maxAge, render, grace)
		stats := make([]loadclient.Stats, len(phases))
		for j, p := range phases {
			stats[j] = res.Window(p.from, p.to)
			fmt.Printf("  %-20s %6.1fs  %s\n", p.name, p.to.Sub(p.from).Seconds(), stats[j])
		}
		during, bare := stats[1], stats[3]
		fmt.Printf("client load: rejections %d (401 %d, 403 %d; target 0); requests during the rotation %d (target >= %d); connection failures during the 6 restarts: rotation %d vs bare restarts %d; p99 before/during/after %s/%s/%s; key file read %d times, key changed %d times\n",
			all.Rejections(), all.Unauthorized, all.Forbidden, during.Requests, minDuring, during.ConnFailures, bare.ConnFailures,
			stats[0].P99.Round(10*time.Microsecond), during.P99.Round(10*time.Microsecond), stats[2].P99.Round(10*time.Microsecond), reads, changes)
		if all.Rejections() != 0 {
			b.Errorf("GOAL MISSED: %d rejections (401 %d, 403 %d), want 0", all.Rejections(), all.Unauthorized, all.Forbidden)
		}
		if during.Requests < minDuring {
			b.Errorf("GOAL MISSED: %d requests during the rotation, want >= %d", during.Requests, minDuring)
		}
		if changes < 1 {
			b.Errorf("the consumer never saw the key change in the rendered file")
		}
		total.Requests += all.Requests
		total.Unauthorized += all.Unauthorized
		total.Forbidden += all.Forbidden
		rotationFailures += during.ConnFailures
		bareFailures += bare.ConnFailures
		b.ReportMetric(float64(during.P99)/float64(time.Millisecond), "p99-ms-during")
	}
	b.ReportMetric(float64(total.Rejections()), "rejections")
	b.ReportMetric(float64(rotationFailures)/float64(b.N), "connfail-rotation")
	b.ReportMetric(float64(bareFailures)/float64(b.N), "connfail-bare")
	for _, k := range keys {
		if strings.Contains(agent.out.String(), k.Reveal()) {
			b.Error("vault agent's output shows a key")
		}
	}
	f.assertNoLeak(keys...)
}

// runTimes is what a benchmark reads of a run from GET /v1/rotations/{id}.
type runTimes struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Actor        string    `json:"actor"`
	Error        string    `json:"error"`
	Started      time.Time `json:"started"`
	RunningSince time.Time `json:"running_since"`
	Finished     time.Time `json:"finished"`
	Seconds      float64   `json:"duration_seconds"`
}

// began is when the run began to work (left the queue).
func (r runTimes) began() time.Time {
	if !r.RunningSince.IsZero() {
		return r.RunningSince
	}
	return r.Started
}

// waitScheduledRun waits until the daemon has started a run of the fixture's deployment on its own and that run has
// ended, and returns it.
func (d *daemonUnderTest) waitScheduledRun(t testing.TB, token string, timeout time.Duration) runTimes {
	t.Helper()
	var id string
	wait.Until(t, "the daemon to start a scheduled rotation", timeout, func() (bool, error) {
		var body struct {
			Deployments []struct {
				Name    string `json:"name"`
				Running string `json:"running_run_id"`
				LastRun string `json:"last_run_id"`
			} `json:"deployments"`
		}
		if code, _ := d.request(t, http.MethodGet, "/v1/deployments", token, "", &body); code != http.StatusOK {
			return false, fmt.Errorf("GET /v1/deployments: HTTP %d", code)
		}
		for _, dep := range body.Deployments {
			if dep.Name == deployment {
				id = cmp.Or(dep.Running, dep.LastRun)
			}
		}
		return id != "", nil
	})
	return d.waitRunEnd(t, token, id, timeout)
}

// waitRunEnd polls a run until it is neither queued nor running, and returns it.
func (d *daemonUnderTest) waitRunEnd(t testing.TB, token, id string, timeout time.Duration) runTimes {
	t.Helper()
	var run runTimes
	wait.Until(t, "run "+id+" to end", timeout, func() (bool, error) {
		run = runTimes{}
		if code, _ := d.request(t, http.MethodGet, "/v1/rotations/"+id, token, "", &run); code != http.StatusOK {
			return false, fmt.Errorf("GET /v1/rotations/%s: HTTP %d", id, code)
		}
		return run.State != "running" && run.State != "queued", nil
	})
	return run
}
