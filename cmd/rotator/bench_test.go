package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/testbed/prober"
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
				for round := 0; round < 2; round++ {
					for _, name := range f.names {
						if err := f.h.Engine.Restart(ctx, name, 10*time.Second); err != nil {
							b.Fatal(err)
						}
						f.waitAccepted(name)
					}
				}
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

// waitAccepted polls a node every 10 ms until it accepts the fixture's current key (an authenticated call).
func (f *fixture) waitAccepted(name string) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if u, err := f.h.URLOf(context.Background(), name, f.scheme); err == nil {
			req, _ := http.NewRequest(http.MethodGet, u+"/collections", nil)
			req.Header.Set("api-key", f.k1.Reveal())
			if resp, err := f.client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("node %s did not accept its key within 30s", name)
}
