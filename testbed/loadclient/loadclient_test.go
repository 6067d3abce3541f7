package loadclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func trimmed(data []byte) (string, error) { return strings.TrimSpace(string(data)), nil }

func writeKey(t *testing.T, path, key string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomically, as Vault Agent renders
		t.Fatal(err)
	}
}

// keyServer accepts the api-key good and refuses any other with 401.
func keyServer(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("api-key") != "good" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestLoadStopsAtItsCountBound(t *testing.T) {
	srv := keyServer(t)
	path := filepath.Join(t.TempDir(), "key")
	writeKey(t, path, "good")
	l, err := Start(context.Background(), Options{Targets: []string{srv.URL, srv.URL}, Streams: 4, Pause: 100 * time.Microsecond,
		MaxRequests: 300, MaxDuration: time.Minute, Key: &FileKey{Path: path, Parse: trimmed}})
	if err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	r := l.Stop()
	st := r.All()
	if !r.Bounded || st.Requests != 300 || st.OK != 300 || st.Rejections() != 0 {
		t.Fatalf("bounded %v: %s", r.Bounded, st)
	}
	if st.P50 <= 0 || st.P99 < st.P50 {
		t.Errorf("latencies p50 %s p99 %s", st.P50, st.P99)
	}
}

func TestLoadCountsRejectionsAndRetriesWithAFreshKey(t *testing.T) {
	srv := keyServer(t)
	path := filepath.Join(t.TempDir(), "key")
	writeKey(t, path, "stale")
	l, err := Start(context.Background(), Options{Targets: []string{srv.URL}, Streams: 2, Pause: 100 * time.Microsecond,
		MaxRequests: 50, MaxDuration: time.Minute, Key: &FileKey{Path: path, Parse: trimmed}})
	if err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	st := l.Stop().All()
	if st.Unauthorized != st.Requests || st.Requests != 50 || st.Retries < 20 {
		t.Fatalf("%s; %d retries", st, st.Retries)
	}
}

func TestLoadNeedsBounds(t *testing.T) {
	k := &FileKey{Path: "x", Parse: trimmed}
	for _, o := range []Options{
		{Targets: []string{"http://127.0.0.1:1"}, Streams: 1, Key: k, MaxDuration: time.Second},
		{Targets: []string{"http://127.0.0.1:1"}, Streams: 1, Key: k, MaxRequests: 1},
		{Streams: 1, Key: k, MaxRequests: 1, MaxDuration: time.Second},
	} {
		if _, err := Start(context.Background(), o); err == nil {
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

func TestFileKeyFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	writeKey(t, path, "k1")
	k := &FileKey{Path: path, Parse: trimmed}
	if got, err := k.Key(); got != "k1" || err != nil {
		t.Fatalf("Key() = %q, %v", got, err)
	}
	writeKey(t, path, "k2")
	if got, err := k.Reload(); got != "k2" || err != nil {
		t.Fatalf("Reload() = %q, %v", got, err)
	}
	writeKey(t, path, "")
	if _, err := k.Reload(); err == nil {
		t.Fatal("an empty key was taken")
	}
	if reads, changes := k.Counts(); reads != 3 || changes != 1 {
		t.Errorf("reads %d, changes %d; want 3, 1", reads, changes)
	}
}

func TestWindowCountsAndQuantiles(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &Result{Start: t0, End: t0.Add(time.Hour)}
	for i := 1; i <= 100; i++ {
		r.Samples = append(r.Samples, Sample{At: t0.Add(time.Duration(i) * time.Second), Latency: time.Duration(i) * time.Millisecond})
	}
	r.Samples = append(r.Samples,
		Sample{At: t0.Add(200 * time.Second), Outcome: ConnFailed},
		Sample{At: t0.Add(201 * time.Second), Outcome: Forbidden, Latency: time.Millisecond},
		Sample{At: t0.Add(202 * time.Second), Outcome: Unauthorized, Latency: time.Millisecond, Retry: true})
	if st := r.Window(t0, t0.Add(101*time.Second)); st.Requests != 100 || st.OK != 100 || st.P50 != 50*time.Millisecond || st.P99 != 99*time.Millisecond {
		t.Errorf("first window: %s", st)
	}
	if st := r.Window(t0.Add(200*time.Second), t0.Add(203*time.Second)); st.ConnFailures != 1 || st.Rejections() != 2 || st.Retries != 1 || st.P50 != time.Millisecond {
		t.Errorf("second window: %s", st)
	}
}
