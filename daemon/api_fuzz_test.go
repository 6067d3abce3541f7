package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// Bearer tokens of the API under fuzz; FuzzAPI's who picks one, or sends its own token.
const (
	fuzzReadToken  = "read-token-0f9e8d7c6b5a"
	fuzzAdminToken = "admin-token-a5b6c7d8e9f0"
)

// FuzzAPI drives the daemon's handler with fuzzed requests: method, request target (path and query; "{run}" stands
// for the id of a finished run), who asks (0 no token, 1 the read token, 2 the admin token, 3 token as the bearer
// token) and the body. Each request is read by net/http's own request parser, as the server reads it (a request it
// cannot read, the server answers 400 itself). For every request the handler answers:
//   - without panicking, and never with a 5xx: bad input gets a 4xx with a message (a JSON "error" from the API's
//     own routes, the mux's text for unknown routes and methods);
//   - a 2xx on a route that takes a token only for a token of the route's role (admin for POST, read or admin for
//     GET): no way around the token check;
//   - never the deployment's key, its fingerprint secret, or an API token that the request did not itself carry.
func FuzzAPI(f *testing.F) {
	api := newFuzzAPI(f)
	for _, s := range []struct {
		method, target string
		who            byte
		token          string
		body           string
	}{
		{"POST", "/v1/deployments/prod/rotations", 2, "", `{"dry_run":true}`},
		{"POST", "/v1/deployments/prod/rotations", 2, "", `{"emergency":true,"dry_run":true}`},
		{"POST", "/v1/deployments/prod/rotations", 1, "", `{}`},
		{"POST", "/v1/deployments/nope/rotations", 2, "", `{"dry_run":true}`},
		{"POST", "/v1/deployments/prod/rotations", 2, "", `{"dry_run":"yes"}`},
		{"POST", "/v1/deployments/prod/rotations", 2, "", `{"dry_run":true,"force":true}`},
		{"POST", "/v1/deployments/prod/rotations", 2, "", `{"dry_run":true} {}`},
		{"POST", "/v1/deployments/%2e%2e/rotations", 3, "bogus", `[]`},
		{"GET", "/v1/rotations/{run}", 1, "", ""},
		{"GET", "/v1/rotations/run-x%00", 2, "", ""},
		{"GET", "/v1/deployments", 1, "", ""},
		{"GET", "/v1//deployments?x=1", 1, "", ""},
		{"GET", "/metrics", 3, fuzzReadToken + "x", ""},
		{"GET", "/healthz", 0, "", ""},
		{"HEAD", "/readyz", 0, "", ""},
		{"DELETE", "/v1/deployments", 2, "", ""},
		{"OPTIONS", "*", 0, "", ""},
		{"GET", "http://rotator/v1/deployments", 1, "", ""},
	} {
		f.Add(s.method, s.target, s.who, s.token, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, target string, who byte, token string, body []byte) {
		api.check(t, method, target, who, token, body)
	})
}

// fuzzAPI is the handler under fuzz with what the oracle needs to know.
type fuzzAPI struct {
	mux     *http.ServeMux
	run     string   // a finished run's id
	secrets []string // what no answer may show unless the request carried it
}

func newFuzzAPI(tb testing.TB) *fuzzAPI {
	key, _ := rotation.NewKey()
	fpSecret := "fingerprint-secret-0123456789abcdef"
	fp, err := rotation.NewFingerprinter([]byte(fpSecret))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan string, 1)
	mgr := rotation.NewManager(ctx, nil, rotation.Hooks{Finished: func(r rotation.Run) {
		select {
		case finished <- r.ID:
		default: // only the first run is waited for
		}
	}})
	tb.Cleanup(func() { cancel(); mgr.Wait() })
	for _, name := range []string{"prod", "search-2"} {
		rot, err := rotation.New(storeWith(tb, name, rotation.KeyRecord{Key: key, Fingerprint: fp.Of(key), Since: time.Unix(0, 0)}),
			[]rotation.Node{newRefusingNode(tb)}, rotation.Options{Deployment: name, Fingerprints: fp, ReadyTimeout: time.Second, Observe: mgr.Observer(name)})
		if err != nil {
			tb.Fatal(err)
		}
		mgr.Add(rot, nil)
	}
	tokens := NewTokens([]TokenSource{
		{Name: "grafana", Read: func(context.Context) (string, error) { return fuzzReadToken, nil }},
		{Name: "ops", Admin: true, Read: func(context.Context) (string, error) { return fuzzAdminToken, nil }},
	}, time.Hour, nil)
	h := NewHandler(Options{Manager: mgr, Tokens: tokens, Metrics: NewMetrics(mgr).Handler(), Ready: func(context.Context) error { return nil }})
	mux, ok := h.(*http.ServeMux)
	if !ok {
		tb.Fatalf("NewHandler returns a %T; the oracle reads the routes of a *http.ServeMux", h)
	}
	// A finished run for GET /v1/rotations/{run}: the node refuses the key, so it ends in drift.
	id, err := mgr.Start("search-2", rotation.Trigger{Actor: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	if done := <-finished; done != id {
		tb.Fatalf("run %s finished, want %s", done, id)
	}
	return &fuzzAPI{mux: mux, run: id, secrets: []string{key.Reveal(), fpSecret, fuzzReadToken, fuzzAdminToken}}
}

// check sends one request and judges the answer.
func (a *fuzzAPI) check(t *testing.T, method, target string, who byte, token string, body []byte) {
	target = strings.ReplaceAll(target, "{run}", a.run)
	var raw bytes.Buffer
	fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: rotator\r\n", method, target)
	bearer := ""
	switch who % 4 {
	case 1:
		bearer = fuzzReadToken
	case 2:
		bearer = fuzzAdminToken
	case 3:
		bearer = token
	}
	if who%4 != 0 {
		fmt.Fprintf(&raw, "Authorization: Bearer %s\r\n", bearer)
	}
	fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n", len(body))
	raw.Write(body)
	sent := raw.String()
	req, err := http.ReadRequest(bufio.NewReader(&raw))
	if err != nil || req.RequestURI == "*" {
		// net/http's server answers these itself: 400 to what it cannot read, 200 to OPTIONS *; the mux gives
		// any other method on * a bare 400.
		return
	}
	rec := httptest.NewRecorder()
	a.mux.ServeHTTP(rec, req)
	resp := rec.Result()
	answer := rec.Body.String()
	for k, vs := range resp.Header {
		answer += "\n" + k + ": " + strings.Join(vs, ", ")
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nrequest: %q\nanswer: HTTP %d %s", fmt.Sprintf(format, args...), sent, resp.StatusCode, answer)
	}
	if resp.StatusCode >= 500 {
		fail("a 5xx")
	}
	if resp.StatusCode >= 400 {
		if strings.TrimSpace(rec.Body.String()) == "" {
			fail("a 4xx without a message")
		}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || strings.TrimSpace(e.Error) == "" {
				fail("a JSON 4xx without an error message (%v)", err)
			}
		}
	}
	if resp.StatusCode < 300 {
		_, pattern := a.mux.Handler(req)
		got := roleNone // what the request's token grants, judged on its own: "Bearer" in any case, then the token
		if f := strings.Fields(req.Header.Get("Authorization")); len(f) == 2 && strings.EqualFold(f[0], "Bearer") {
			got = map[string]role{fuzzReadToken: roleRead, fuzzAdminToken: roleAdmin}[f[1]]
		}
		need := roleNone
		switch {
		case pattern == "GET /healthz" || pattern == "GET /readyz":
		case strings.HasPrefix(pattern, "POST "):
			need = roleAdmin
		default:
			need = roleRead
		}
		if got < need {
			fail("HTTP %d on %q for a token of role %d; the route needs %d", resp.StatusCode, pattern, got, need)
		}
	}
	for _, s := range a.secrets {
		if strings.Contains(answer, s) && !strings.Contains(sent, s) {
			fail("the answer shows a secret")
		}
	}
}
