package enginetape

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRecordThenPlay: what the recorder passes through (and what it injects) is kept with its status, body and
// headers; the tape saved and loaded plays the same answers back, per method, path and query, and the player says
// which requests it had no answer for and which recorded ones were never asked.
func TestRecordThenPlay(t *testing.T) {
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Date", "dropped")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"Id": "abc", "Got": `+string(body)+`}`)
	}))
	defer engine.Close()
	rec, err := NewRecorder("tcp://" + engine.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rec.SetInjector(func(method, path, query string) (int, string, bool) {
		return 500, "injected", path == "/v1.41/containers/x/start"
	})
	proxy := httptest.NewServer(rec)
	defer proxy.Close()
	do := func(base, method, path, body string) (int, string, http.Header) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data), resp.Header
	}
	if code, body, _ := do(proxy.URL, "POST", "/v1.41/containers/create?name=n", `{"Env": ["A=1"]}`); code != 201 || !strings.Contains(body, `"A=1"`) {
		t.Fatalf("through the recorder: %d %s", code, body)
	}
	if code, body, _ := do(proxy.URL, "POST", "/v1.41/containers/x/start", ""); code != 500 || !strings.Contains(body, "injected") {
		t.Fatalf("injected: %d %s", code, body)
	}
	tape := &Tape{Container: "n", Exchanges: rec.Take()}
	if len(tape.Exchanges) != 2 || !tape.Exchanges[1].Injected || string(tape.Exchanges[0].Request) != `{"Env":["A=1"]}` {
		t.Fatalf("recorded %+v", tape.Exchanges)
	}
	if _, dropped := tape.Exchanges[0].Header["Date"]; dropped {
		t.Error("the Date header was kept")
	}
	path := filepath.Join(t.TempDir(), "tape.json")
	if err := tape.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}

	player := NewPlayer(loaded)
	srv := httptest.NewServer(player)
	defer srv.Close()
	code, body, hdr := do(srv.URL, "POST", "/v1.41/containers/create?name=n", `{"Env": ["B=2"]}`)
	if code != 201 || !strings.Contains(body, `"A=1"`) || hdr.Get("Api-Version") != "1.41" {
		t.Errorf("played: %d %s %v", code, body, hdr)
	}
	if code, _, _ := do(srv.URL, "POST", "/v1.41/containers/create?name=other", ""); code != 500 {
		t.Errorf("a request not on the tape: HTTP %d, want 500", code)
	}
	if got := player.Unmatched(); !slices.Equal(got, []string{"POST /v1.41/containers/create?name=other"}) {
		t.Errorf("unmatched %q", got)
	}
	if got := player.Unused(); !slices.Equal(got, []string{"POST /v1.41/containers/x/start"}) {
		t.Errorf("unused %q", got)
	}
	if calls := player.Calls(); len(calls) != 2 || string(calls[0].Body) != `{"Env": ["B=2"]}` {
		t.Errorf("calls %+v", calls)
	}
}
