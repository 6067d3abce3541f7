package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
	"github.com/qdrantrotator/rotator/testbed/prober"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
	"github.com/qdrantrotator/rotator/testbed/wait"
	"github.com/qdrantrotator/rotator/vaultsync"
)

// BenchmarkRotationOverhead measures, in one process and one run, on the same three stand-in nodes: (a) the bare
// restarts a scheduled rotation needs (each node twice: stop, start, wait until an authenticated call succeeds), and
// (b) a full scheduled rotation with grace 0. A prober plays a client during both, so both carry the same load; its
// counts during (b) are printed with the ratio (b)/(a). Target: ratio <= 1.10, rejections 0. Run with `make bench`.
func BenchmarkRotationOverhead(b *testing.B) {
	for _, mode := range []string{"file", "env"} {
		b.Run(mode, func(b *testing.B) {
			f := newFixture(b, fixtureOpts{nodes: 3, mode: mode, grace: "0s"})
			ctx := context.Background()
			var bare, full time.Duration
			var res prober.Result
			for i := 0; i < b.N; i++ {
				baseline := f.startProber()
				start := time.Now()
				f.bareRollingRestarts(ctx)
				bare += time.Since(start)
				baseline.Stop()

				p := f.startProber()
				start = time.Now()
				code, out := f.rotator("rotate")
				full += time.Since(start)
				r := p.Stop()
				if code != exitOK {
					b.Fatalf("rotate exited %d:\n%s", code, out)
				}
				res.Requests += r.Requests
				res.Rejected += r.Rejected
				f.k1 = f.current().Key // the next round starts from the new key
			}
			ratio := float64(full) / float64(bare)
			b.ReportMetric(ratio, "rotation/bare")
			b.ReportMetric(float64(res.Rejected), "rejections")
			fmt.Printf("rotation overhead (%s mode, 3 nodes, 6 restarts, mean of %d): bare restarts %s, full rotation %s, ratio %.3f (target <= 1.10); prober %d requests, %d rejections\n",
				mode, b.N, (bare / time.Duration(b.N)).Round(time.Millisecond), (full / time.Duration(b.N)).Round(time.Millisecond), ratio, res.Requests, res.Rejected)
		})
	}
}

// bareRollingRestarts restarts the fixture's nodes as a rotation does, without the rotator: each node twice, one
// at a time (stop, start, wait until an authenticated call succeeds).
func (f *fixture) bareRollingRestarts(ctx context.Context) {
	f.t.Helper()
	for round := 0; round < 2; round++ {
		for _, name := range f.names {
			if err := f.h.Engine.Restart(ctx, name, 10*time.Second); err != nil {
				f.t.Fatal(err)
			}
			f.waitAccepted(name)
		}
	}
}

// waitAccepted polls a node every 10 ms until it accepts the fixture's current key (an authenticated call).
func (f *fixture) waitAccepted(name string) {
	f.t.Helper()
	wait.UntilEvery(f.t, "node "+name+" to accept its key", 30*time.Second, 10*time.Millisecond, func() (bool, error) {
		u, err := f.h.URLOf(context.Background(), name, f.scheme)
		if err != nil {
			return false, err
		}
		req, _ := http.NewRequest(http.MethodGet, u+"/collections", nil)
		req.Header.Set("api-key", f.k1.Reveal())
		resp, err := f.client.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("HTTP %d", resp.StatusCode)
	})
}

// BenchmarkRemint10000Keys re-mints and publishes 10,000 collection-scoped named keys against the Vault dev server:
// first their creation, then a re-mint for a new admin key (what every rotation does). Target: <= 30 s.
func BenchmarkRemint10000Keys(b *testing.B) {
	const n = 10000
	srv := vaultdev.StartT(b)
	store, err := vaultsync.New(vaultsync.Options{Address: srv.Addr, Token: srv.Token, Mount: "secret", Prefix: "qdrant"})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]rotation.NamedKey, n)
	for i := range keys {
		keys[i] = rotation.NamedKey{Name: fmt.Sprintf("tenant-%05d", i), Write: true, Collections: []string{fmt.Sprintf("c%05d", i)}, TTL: time.Hour}
	}
	fp, _ := rotation.NewFingerprinter([]byte("bench-fingerprint-secret"))
	// The node runs each round's admin key with jwt_rbac, so the rotator's proof that it accepts a JWT signed with
	// that key is real; the benchmark measures Vault publishing, not nodes.
	node := rotationtest.NewNode("bench-node", rotation.Slots{})
	r, err := rotation.New(store, []rotation.Node{node}, rotation.Options{Deployment: "bench", Keys: keys, Fingerprints: fp})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		for round, label := range []string{"first publication", "re-mint for a new admin key"} {
			k, _ := rotation.NewKey()
			node.Set(rotation.Slots{APIKey: k, JWTRBAC: true})
			start := time.Now()
			done, err := r.RemintKeys(ctx, k, fmt.Sprintf("bench-%d-%d", i, round))
			took := time.Since(start)
			if err != nil || done != n {
				b.Fatalf("%s: published %d of %d: %v", label, done, n, err)
			}
			b.ReportMetric(took.Seconds(), "s/"+strings.ReplaceAll(label, " ", "-"))
			fmt.Printf("named keys, %s: %d keys in %s, %s per key (target: <= 30s total)\n", label, n, took.Round(time.Millisecond), (took / n).Round(time.Microsecond))
		}
	}
}

// BenchmarkIdleDaemon100 measures an idle `rotator daemon` managing 100 deployments (each with a weekly schedule
// and a max age, polling Vault every 30 s; nodes are named but never touched while idle): resident memory and CPU
// over 60 s. Target: <= 40 MiB, <= 0.5 % of a core.
func BenchmarkIdleDaemon100(b *testing.B) {
	bin := buildRotator(b)
	srv := vaultdev.StartT(b)
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(srv.Token), 0o600); err != nil {
		b.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "vault: {address: %s, token_file: token}\ndaemon: {listen: \"127.0.0.1:0\"}\ndeployments:\n", srv.Addr)
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&cfg, "  - {name: d%03d, mode: env, containers: [idle-%03d-0, idle-%03d-1, idle-%03d-2], schedule: \"0 3 * * 0\", max_age: 720h}\n", i, i, i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "rotator.yml"), []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		d := launchDaemon(b, filepath.Join(dir, "rotator.yml"), daemonOpts{bin: bin})
		cmd := d.cmd
		time.Sleep(5 * time.Second) // start-up: every loop has read Vault once
		cpu0 := procCPU(b, cmd.Process.Pid)
		var peak int64
		start := time.Now()
		for time.Since(start) < 60*time.Second {
			peak = max(peak, procRSS(b, cmd.Process.Pid))
			time.Sleep(time.Second)
		}
		cpu := (procCPU(b, cmd.Process.Pid) - cpu0) / time.Since(start).Seconds() * 100
		d.stop(b)
		b.ReportMetric(float64(peak)/(1<<20), "MiB-rss")
		b.ReportMetric(cpu, "%-core")
		fmt.Printf("idle daemon, 100 deployments, 60 s: peak RSS %.1f MiB (target <= 40), CPU %.3f %% of a core (target <= 0.5)\n", float64(peak)/(1<<20), cpu)
	}
}

// procCPU is the process's user+system CPU time in seconds, from /proc.
func procCPU(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// procRSS is the process's resident set in bytes, from /proc.
func procRSS(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkClusterRotation measures, on one 3-peer stand-in cluster (a collection with replication factor 2), the
// bare rolling restarts a rotation needs with their recovery waits (restart a peer, wait until every peer sees every
// replica Active) against a full rotation with grace 0, while a client writes and reads through it all; for both
// plans (2 restarts per peer, and 3 with enforce_internal_auth). Target: ratio <= 1.10, rejections 0.
func BenchmarkClusterRotation(b *testing.B) {
	for _, internal := range []bool{false, true} {
		b.Run(fmt.Sprintf("enforce_internal_auth=%v", internal), func(b *testing.B) {
			f := newFixture(b, fixtureOpts{nodes: 3, mode: "env", grace: "0s", cluster: true, internalAuth: internal,
				extra: fmt.Sprintf("    cluster: {internal_auth: %v}\n", internal)})
			f.setupCollection(2)
			passes := 2
			if internal {
				passes = 3
			}
			var bare, full, bareRestarts time.Duration
			var requests int
			var rejections []string
			var trace rotationTrace
			for i := 0; i < b.N; i++ {
				c := f.startClusterClient()
				start := time.Now()
				for p := 0; p < passes; p++ {
					for _, name := range f.names {
						t0 := time.Now()
						if err := f.h.Engine.Restart(context.Background(), name, 10*time.Second); err != nil {
							b.Fatal(err)
						}
						f.waitActive(f.k1, 60*time.Second)
						bareRestarts += time.Since(t0)
					}
				}
				bare += time.Since(start)
				start = time.Now()
				code, out := f.rotator("rotate", "--output", "json")
				end := time.Now()
				full += end.Sub(start)
				c.Stop()
				if code != exitOK {
					b.Fatalf("rotate exited %d:\n%s", code, out)
				}
				trace.add(b, start, end, out)
				c.mu.Lock()
				requests, rejections = requests+c.requests, append(rejections, c.rejections...)
				c.mu.Unlock()
				f.k1 = f.current().Key
			}
			ratio := float64(full) / float64(bare)
			b.ReportMetric(ratio, "rotation/bare")
			b.ReportMetric(float64(len(rejections)), "rejections")
			fmt.Printf("cluster rotation (3 peers, rf 2, enforce_internal_auth=%v, %d restarts): bare rolling restarts with recovery %s, full rotation %s, ratio %.3f (target <= 1.10); client %d requests, %d rejections\n",
				internal, passes*3, (bare / time.Duration(b.N)).Round(time.Millisecond), (full / time.Duration(b.N)).Round(time.Millisecond), ratio, requests, len(rejections))
			fmt.Printf("  where the time goes, mean per rotation: bare restart+settle %s per peer restart; rotation %s\n",
				(bareRestarts / time.Duration(b.N*passes*3)).Round(time.Millisecond), trace.summary(b.N))
		})
	}
}

// rotationTrace sums where a rotation's time goes, from its events (rotate --output json): before the first node
// restarts (start-up, preflight, the first journal writes), each node's restart and checks ("restarting" to
// "checked"), the time between one node's checks and the next node's restart (settling, ordering, journal writes,
// the fence), and after the last node's checks (settling, publish, retire, the process's end).
type rotationTrace struct {
	before, restarts, between, after time.Duration
	nodeSteps                        int
}

func (t *rotationTrace) add(b *testing.B, start, end time.Time, out string) {
	var res struct {
		Results []struct {
			Events []rotation.Event `json:"events"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Results) != 1 {
		b.Fatalf("rotate --output json: %v", err)
	}
	var restarting, lastChecked time.Time
	for _, e := range res.Results[0].Events {
		switch {
		case strings.HasPrefix(e.Message, "restarting: "):
			if lastChecked.IsZero() {
				t.before += e.Time.Sub(start)
			} else {
				t.between += e.Time.Sub(lastChecked)
			}
			restarting = e.Time
		case strings.HasPrefix(e.Message, "checked: ") && !restarting.IsZero():
			t.restarts += e.Time.Sub(restarting)
			t.nodeSteps++
			lastChecked, restarting = e.Time, time.Time{}
		}
	}
	if lastChecked.IsZero() {
		b.Fatal("the rotation restarted no node")
	}
	t.after += end.Sub(lastChecked)
}

func (t *rotationTrace) summary(n int) string {
	per := func(d time.Duration) time.Duration { return (d / time.Duration(n)).Round(time.Millisecond) }
	return fmt.Sprintf("before the first restart %s, %d node restarts with their checks %s (%s each), between nodes %s, after the last %s",
		per(t.before), t.nodeSteps/n, per(t.restarts), (t.restarts / time.Duration(max(t.nodeSteps, 1))).Round(time.Millisecond), per(t.between), per(t.after))
}

// benchEnvInts reads a benchmark's knob: whole numbers >= 1, separated by commas, in the environment variable name
// (def when it is unset).
func benchEnvInts(b *testing.B, name string, def []int) []int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want whole numbers >= 1, separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}
