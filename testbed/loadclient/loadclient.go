// Package loadclient plays many Qdrant clients at once, for benchmarks: Streams goroutines, each sending
// authenticated requests round-robin over the nodes with a short pause between them, holding the key the way a real
// consumer does (a KeySource, such as the file Vault Agent renders), and recording every request (when it was sent,
// to which node, its outcome and latency) so that a benchmark can cut one run into phases afterwards. The load is
// bounded in count and in time.
package loadclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is what one request came to.
type Outcome uint8

const (
	OK           Outcome = iota // 200
	Unauthorized                // 401: the key was refused
	Forbidden                   // 403: the key was refused for this request
	ConnFailed                  // no HTTP answer: connection refused or reset, timeout (a node restarting)
	Other                       // any other status
	NoKey                       // the consumer had no key to send (its source could not be read): nothing sent
)

// Sample is one request.
type Sample struct {
	At      time.Time // when it was sent
	Latency time.Duration
	Node    int // index into Options.Targets
	Outcome Outcome
	// Retry marks the one retry a stream makes, with a freshly read key, after a 401 or 403.
	Retry bool
}

// KeySource gives the key a consumer holds.
type KeySource interface {
	// Key returns the key held now (cheap: called before every request).
	Key() (string, error)
	// Reload reads the key again at once (after a rejection).
	Reload() (string, error)
}

// Options configure a load run.
type Options struct {
	// Targets are the nodes' REST base URLs, e.g. http://127.0.0.1:6333.
	Targets []string
	// Path is requested with GET on every node (default /collections).
	Path string
	// Streams is the number of concurrent clients.
	Streams int
	// Pause is each stream's wait after each request (default 2 ms), so the load is the same whatever the answer.
	Pause time.Duration
	// MaxRequests and MaxDuration bound the run: it ends at whichever comes first (or at Stop). Both must be set.
	MaxRequests int
	MaxDuration time.Duration
	Key         KeySource
	// Client makes the calls (nil: keep-alive connections, a 2 s timeout).
	Client *http.Client
}

// Load is a running load client.
type Load struct {
	o       Options
	client  *http.Client
	cancel  context.CancelFunc
	done    chan struct{}
	sent    atomic.Int64
	start   time.Time
	bounded atomic.Bool
	streams [][]Sample // one per stream, each written only by its stream until done
}

// Start begins the load in the background.
func Start(ctx context.Context, o Options) (*Load, error) {
	if len(o.Targets) == 0 || o.Streams < 1 || o.Key == nil {
		return nil, errors.New("loadclient: Targets, Streams and Key are required")
	}
	if o.MaxRequests < 1 || o.MaxDuration <= 0 {
		return nil, errors.New("loadclient: MaxRequests and MaxDuration must bound the run")
	}
	if o.Path == "" {
		o.Path = "/collections"
	}
	if o.Pause == 0 {
		o.Pause = 2 * time.Millisecond
	}
	l := &Load{o: o, client: o.Client, done: make(chan struct{}), streams: make([][]Sample, o.Streams)}
	if l.client == nil {
		l.client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 2 * o.Streams, MaxIdleConnsPerHost: o.Streams, IdleConnTimeout: 30 * time.Second}}
	}
	ctx, l.cancel = context.WithTimeout(ctx, o.MaxDuration)
	l.start = time.Now()
	var wg sync.WaitGroup
	for i := range o.Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.stream(ctx, i)
		}()
	}
	go func() {
		wg.Wait()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			l.bounded.Store(true)
		}
		close(l.done)
	}()
	return l, nil
}

// stream sends requests until the run ends; stream i starts at node i and moves one node on at each request.
func (l *Load) stream(ctx context.Context, i int) {
	pause := time.NewTimer(0)
	defer pause.Stop()
	for n := i; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-pause.C:
		}
		node := n % len(l.o.Targets)
		key, err := l.o.Key.Key()
		if !l.send(ctx, i, node, key, err, false) {
			return
		}
		if last := l.streams[i][len(l.streams[i])-1].Outcome; last == Unauthorized || last == Forbidden {
			// A consumer refused re-reads its key once and retries; the rejection counts all the same.
			key, err = l.o.Key.Reload()
			if !l.send(ctx, i, node, key, err, true) {
				return
			}
		}
		pause.Reset(l.o.Pause)
	}
}

// send makes one request and records it; false when the run is over (a bound reached, or stopped).
func (l *Load) send(ctx context.Context, stream, node int, key string, keyErr error, retry bool) bool {
	if l.sent.Add(1) > int64(l.o.MaxRequests) {
		l.bounded.Store(true)
		return false
	}
	s := Sample{At: time.Now(), Node: node, Retry: retry}
	if keyErr != nil || key == "" {
		s.Outcome = NoKey
		l.streams[stream] = append(l.streams[stream], s)
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.o.Targets[node]+l.o.Path, nil)
	if err != nil {
		s.Outcome = Other
		l.streams[stream] = append(l.streams[stream], s)
		return true
	}
	req.Header.Set("api-key", key)
	resp, err := l.client.Do(req)
	s.Latency = time.Since(s.At)
	switch {
	case err != nil && ctx.Err() != nil:
		l.sent.Add(-1) // cut short by the end of the run: not a request
		return false
	case err != nil:
		s.Outcome = ConnFailed
	default:
		drain(resp)
		switch resp.StatusCode {
		case http.StatusOK:
			s.Outcome = OK
		case http.StatusUnauthorized:
			s.Outcome = Unauthorized
		case http.StatusForbidden:
			s.Outcome = Forbidden
		default:
			s.Outcome = Other
		}
	}
	l.streams[stream] = append(l.streams[stream], s)
	return true
}

// drain reads the body to its end, so the connection is kept for the next request.
func drain(resp *http.Response) {
	buf := make([]byte, 4096)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
}

// Done is closed when the run has ended (a bound reached, or Stop).
func (l *Load) Done() <-chan struct{} { return l.done }

// Stop ends the run, waits for every stream, and returns what was recorded.
func (l *Load) Stop() *Result {
	l.cancel()
	<-l.done
	r := &Result{Start: l.start, End: time.Now(), Streams: l.o.Streams, Bounded: l.bounded.Load()}
	for _, s := range l.streams {
		r.Samples = append(r.Samples, s...)
	}
	slices.SortFunc(r.Samples, func(a, b Sample) int { return a.At.Compare(b.At) })
	return r
}

// Result is a whole run, its samples in the order they were sent.
type Result struct {
	Start, End time.Time
	Streams    int
	// Bounded says the run ended at its MaxRequests or MaxDuration rather than at Stop: the phases a benchmark
	// meant to cover may be cut short.
	Bounded bool
	Samples []Sample
}

// Stats sum up the requests of a window.
type Stats struct {
	Requests     int // sent (NoKey included: the consumer tried)
	OK           int
	Unauthorized int
	Forbidden    int
	ConnFailures int
	Other        int
	NoKey        int
	Retries      int
	// P50 and P99 are the latencies of the requests answered (any status), 0 with none.
	P50, P99 time.Duration
}

// Rejections are the 401s and 403s: the one thing a rotation must never cause.
func (s Stats) Rejections() int { return s.Unauthorized + s.Forbidden }

func (s Stats) String() string {
	return fmt.Sprintf("%d requests: %d ok, %d rejected (401 %d, 403 %d), %d connection failures, %d other, %d without a key; latency p50 %s p99 %s",
		s.Requests, s.OK, s.Rejections(), s.Unauthorized, s.Forbidden, s.ConnFailures, s.Other, s.NoKey, ms(s.P50), ms(s.P99))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// Window sums up the requests sent in [from, to).
func (r *Result) Window(from, to time.Time) Stats {
	var st Stats
	var lat []time.Duration
	for _, s := range r.Samples {
		if s.At.Before(from) || !s.At.Before(to) {
			continue
		}
		st.Requests++
		if s.Retry {
			st.Retries++
		}
		switch s.Outcome {
		case OK:
			st.OK++
		case Unauthorized:
			st.Unauthorized++
		case Forbidden:
			st.Forbidden++
		case ConnFailed:
			st.ConnFailures++
		case Other:
			st.Other++
		case NoKey:
			st.NoKey++
		}
		if s.Outcome != ConnFailed && s.Outcome != NoKey {
			lat = append(lat, s.Latency)
		}
	}
	st.P50, st.P99 = quantile(lat, 0.50), quantile(lat, 0.99)
	return st
}

// All sums up the whole run.
func (r *Result) All() Stats { return r.Window(r.Start, r.End.Add(time.Nanosecond)) }

// quantile is the nearest-rank q-quantile of d (sorted in place); 0 for none.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}
