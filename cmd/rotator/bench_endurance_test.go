package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// BenchmarkEndurance runs 200 back-to-back rotations of three stand-in nodes (file mode, grace 0s) in one `rotator
// daemon` process through its API (POST, wait until the run ends, next), with vault.retention 2s. After each
// rotation it samples the daemon: goroutines (go_goroutines in /metrics, when the daemon exports it), resident
// memory and OS threads (/proc/PID/status) and open file descriptors (/proc/PID/fd). Targets: 0 failed rotations (the
// benchmark stops at the first), a flat daemon (mean RSS over the last 20 rotations <= 1.10 x the first 20;
// goroutines and open fds within 3 of the first 20's mean), and Vault keeping what the retention says: every version
// retired more than the retention before the last retirement is soft-deleted, and reading it returns no data.
// ROTATOR_BENCH_ROTATIONS sets the number of rotations (default 200) for a short development run.
func BenchmarkEndurance(b *testing.B) {
	n := benchEnvInts(b, "ROTATOR_BENCH_ROTATIONS", []int{200})[0]
	if n < 2 {
		b.Fatalf("ROTATOR_BENCH_ROTATIONS=%d: want a whole number >= 2", n)
	}
	const retention = 2 * time.Second
	bin := buildRotator(b)
	f := newFixture(b, fixtureOpts{nodes: 3, mode: "file", grace: "0s",
		top: "daemon:\n  poll_interval: 1s\n  tokens:\n    - {name: bench, role: admin, file: admin.token}\n"})
	token := randomHex(16)
	if err := os.WriteFile(filepath.Join(f.dir, "admin.token"), []byte(token+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := os.ReadFile(f.config)
	if err != nil {
		b.Fatal(err)
	}
	withRetention := strings.Replace(string(cfg), "  lease_ttl: 3s\n", fmt.Sprintf("  lease_ttl: 3s\n  retention: %s\n", retention), 1)
	if withRetention == string(cfg) {
		b.Fatal("the fixture's config has no vault.lease_ttl line to put vault.retention after")
	}
	if err := os.WriteFile(f.config, []byte(withRetention), 0o600); err != nil {
		b.Fatal(err)
	}
	post := "/v1/deployments/" + deployment + "/rotations"
	d := f.startDaemon(daemonOpts{bin: bin})
	pid := d.cmd.Process.Pid
	samples := make([]procSample, 0, n)
	var slowest time.Duration
	start := time.Now()
	for r := 1; r <= n; r++ {
		var started struct {
			ID string `json:"id"`
		}
		if code, _ := d.request(b, http.MethodPost, post, token, `{}`, &started); code != http.StatusAccepted {
			b.Fatalf("rotation %d of %d: POST answered HTTP %d", r, n, code)
		}
		run := d.waitRunEnd(b, token, started.ID, 120*time.Second)
		if run.State != string(rotation.RunCompleted) {
			b.Fatalf("rotation %d of %d ended %s (failures: 1, target 0): %s", r, n, run.State, run.Error)
		}
		slowest = max(slowest, time.Duration(run.Seconds*float64(time.Second)))
		samples = append(samples, sampleDaemon(b, d, pid, token))
	}
	took := time.Since(start)
	if code := d.stop(b); code != exitOK {
		b.Errorf("daemon exited %d", code)
	}

	w := min(20, n/2)
	first, last := samples[:w], samples[n-w:]
	rss := meanOf(last, sampleRSS) / meanOf(first, sampleRSS)
	fds := meanOf(last, sampleFDs) - meanOf(first, sampleFDs)
	fmt.Printf("endurance: %d rotations of 3 nodes (file mode, grace 0s) through the daemon's API in %s (%s each, slowest %s), 0 failures (target 0)\n",
		n, took.Round(time.Second), (took / time.Duration(n)).Round(time.Millisecond), slowest.Round(time.Millisecond))
	fmt.Printf("endurance: daemon RSS mean over the first %d rotations %.1f MiB, last %d %.1f MiB, ratio %.3f (target <= 1.10); open fds after rotation 1: %d, after rotation %d: %d, means %.1f -> %.1f (target: within 3); OS threads %.1f -> %.1f\n",
		w, meanOf(first, sampleRSS)/(1<<20), w, meanOf(last, sampleRSS)/(1<<20), rss,
		samples[0].fds, n, samples[n-1].fds, meanOf(first, sampleFDs), meanOf(last, sampleFDs),
		meanOf(first, sampleThreads), meanOf(last, sampleThreads))
	if rss > 1.10 {
		b.Errorf("GOAL MISSED: the daemon's RSS grew %.3f x from the first %d rotations to the last %d (target <= 1.10)", rss, w, w)
	}
	if fds > 3 {
		b.Errorf("GOAL MISSED: the daemon's open fds grew by %.1f from the first %d rotations to the last %d (target <= 3)", fds, w, w)
	}
	metrics := map[string]float64{"rss-last/first": rss, "fds-growth": fds, "s/rotation": took.Seconds() / float64(n)}
	if samples[0].goroutines < 0 {
		fmt.Printf("endurance: goroutines not measured: the daemon's /metrics has no go_goroutines (the Go collector is not registered)\n")
	} else {
		g := meanOf(last, sampleGoroutines) - meanOf(first, sampleGoroutines)
		fmt.Printf("endurance: daemon goroutines mean over the first %d rotations %.1f, last %d %.1f, growth %.1f (target <= 3)\n",
			w, meanOf(first, sampleGoroutines), w, meanOf(last, sampleGoroutines), g)
		metrics["goroutine-growth"] = g
		if g > 3 {
			b.Errorf("GOAL MISSED: the daemon's goroutines grew by %.1f from the first %d rotations to the last %d (target <= 3)", g, w, w)
		}
	}
	f.checkRetention(retention, n)
	f.assertNoLeak(f.current().Key)
	// One endurance run is the benchmark, whatever -benchtime says (`make bench` uses 3x): b.Loop, reached once the
	// run is done, only marks the function as run, so that the testing package does not call it again. It resets
	// the timer and the reported metrics, so they are reported after it.
	for b.Loop() {
	}
	for unit, v := range metrics {
		b.ReportMetric(v, unit)
	}
}

// procSample is the daemon's state after one rotation.
type procSample struct {
	rss, threads, fds int
	goroutines        int // -1: not exported
}

func sampleRSS(p procSample) int        { return p.rss }
func sampleFDs(p procSample) int        { return p.fds }
func sampleThreads(p procSample) int    { return p.threads }
func sampleGoroutines(p procSample) int { return p.goroutines }

func meanOf(s []procSample, field func(procSample) int) float64 {
	sum := 0
	for _, p := range s {
		sum += field(p)
	}
	return float64(sum) / float64(len(s))
}

// sampleDaemon reads the daemon's resident memory and threads from /proc/PID/status, its open fds from
// /proc/PID/fd and its goroutines from /metrics (go_goroutines; -1 when it has none).
func sampleDaemon(b *testing.B, d *daemonUnderTest, pid int, token string) procSample {
	s := procSample{rss: int(procRSS(b, pid)), goroutines: -1}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			s.threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		b.Fatal(err)
	}
	s.fds = len(fds)
	var metrics string
	if code, _ := d.request(b, http.MethodGet, "/metrics", token, "", &metrics); code != http.StatusOK {
		b.Fatalf("GET /metrics: HTTP %d", code)
	}
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			g, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				s.goroutines = int(g)
			}
		}
	}
	return s
}

// checkRetention reads the admin record's metadata from Vault after n rotations with vault.retention retention:
// it prints the versions kept against the retention, requires every version retired more than the retention before
// the last retirement to be soft-deleted, and reads each soft-deleted version to prove it returns no data.
func (f *fixture) checkRetention(retention time.Duration, n int) {
	t := f.t
	t.Helper()
	path := f.store.ConsumerPath(deployment, rotation.SlotAdmin)
	var meta struct {
		Data struct {
			CurrentVersion int               `json:"current_version"`
			MaxVersions    int               `json:"max_versions"`
			CustomMetadata map[string]string `json:"custom_metadata"`
			Versions       map[string]struct {
				DeletionTime string `json:"deletion_time"`
				Destroyed    bool   `json:"destroyed"`
			} `json:"versions"`
		} `json:"data"`
	}
	if code := f.vaultGet("secret/metadata/"+path, &meta); code != http.StatusOK {
		t.Fatalf("metadata of %s: HTTP %d", path, code)
	}
	m := meta.Data
	retired := map[int]time.Time{}
	var lastRetired time.Time
	for k, v := range m.CustomMetadata {
		at, ok := strings.CutPrefix(v, "retired ")
		ver, err := strconv.Atoi(strings.TrimPrefix(k, "v"))
		if !ok || err != nil {
			continue
		}
		when, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatalf("custom metadata %s: %q is not a retirement time", k, v)
		}
		retired[ver] = when
		lastRetired = later(lastRetired, when)
	}
	var readable, deleted, mustBeGone, gone []int
	for k, v := range m.Versions {
		ver, _ := strconv.Atoi(k)
		if v.DeletionTime != "" || v.Destroyed {
			deleted = append(deleted, ver)
		} else {
			readable = append(readable, ver)
		}
		// The retention is applied at each retirement, to labels of whole seconds: a version whose label is more
		// than the retention older than the last retirement's label was past it then.
		if when, ok := retired[ver]; ok && lastRetired.Sub(when) > retention {
			mustBeGone = append(mustBeGone, ver)
		}
	}
	slices.Sort(readable)
	slices.Sort(deleted)
	slices.Sort(mustBeGone)
	for _, ver := range deleted {
		var read struct {
			Data *struct {
				Data map[string]any `json:"data"`
			} `json:"data"`
		}
		code := f.vaultGet(fmt.Sprintf("secret/data/%s?version=%d", path, ver), &read)
		if read.Data != nil && read.Data.Data != nil {
			t.Errorf("soft-deleted version %d is still readable (HTTP %d, %d fields)", ver, code, len(read.Data.Data))
			continue
		}
		gone = append(gone, ver)
	}
	if !slices.Contains(readable, m.CurrentVersion) || m.CurrentVersion != n+1 {
		t.Errorf("current version %d (want %d after %d rotations), readable %v", m.CurrentVersion, n+1, n, readable)
	}
	for _, ver := range mustBeGone {
		if !slices.Contains(deleted, ver) {
			t.Errorf("version %d was retired more than the retention (%s) before the last retirement but is not soft-deleted", ver, retention)
		}
	}
	if n >= 3 && len(gone) == 0 {
		t.Errorf("no soft-deleted version to read after %d rotations with retention %s", n, retention)
	}
	fmt.Printf("endurance: Vault's admin record after %d rotations (vault.retention %s): current version %d; %d versions in its metadata (max_versions %d; Vault's default keeps the latest 10), readable %v (the current one and those retired within the retention), soft-deleted %v; reading each soft-deleted version returns no data (%d of %d)\n",
		n, retention, m.CurrentVersion, len(m.Versions), m.MaxVersions, readable, deleted, len(gone), len(deleted))
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// vaultGet GETs a Vault API path with the root token and decodes the JSON answer into out; it returns the status.
func (f *fixture) vaultGet(path string, out any) int {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.vault.Addr+"/v1/"+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", f.vault.Token)
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil && resp.StatusCode == http.StatusOK {
		f.t.Fatalf("vault %s: %v", path, err)
	}
	return resp.StatusCode
}
