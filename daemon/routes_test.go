package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// TestRoutes walks every route of the API with each kind of caller: the status, the answer's shape and its error
// message, read against admin tokens, bad path parameters and bodies, and that no answer holds the key or a token.
// The rotation it starts is held at its first node call until the 409 has been seen, then ends in drift.
func TestRoutes(t *testing.T) {
	key, _ := rotation.NewKey()
	fp, err := rotation.NewFingerprinter([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan rotation.Run, 4)
	mgr := rotation.NewManager(ctx, nil, rotation.Hooks{Finished: func(r rotation.Run) { finished <- r }})
	gate := make(chan struct{})
	node := &gatedNode{Node: newRefusingNode(t), gate: gate}
	rot, err := rotation.New(storeWith(t, "prod", rotation.KeyRecord{Key: key, Fingerprint: fp.Of(key), Since: time.Unix(0, 0)}),
		[]rotation.Node{node}, rotation.Options{Deployment: "prod", Fingerprints: fp, ReadyTimeout: time.Second, Observe: mgr.Observer("prod")})
	if err != nil {
		t.Fatal(err)
	}
	mgr.Add(rot, nil)
	const readTok, adminTok = "read-0123456789", "admin-0123456789"
	tokens := NewTokens([]TokenSource{
		{Name: "grafana", Read: func(context.Context) (string, error) { return readTok, nil }},
		{Name: "ops", Admin: true, Read: func(context.Context) (string, error) { return adminTok, nil }},
	}, time.Hour, nil)
	srv := httptest.NewServer(NewHandler(Options{Manager: mgr, Tokens: tokens, Metrics: NewMetrics(mgr).Handler(),
		Ready: func(context.Context) error { return nil }}))
	defer srv.Close()

	type answer struct {
		code   int
		header http.Header
		body   string
		json   map[string]any
	}
	call := func(method, path, token, body string) answer {
		t.Helper()
		code, header, b := send(t, method, srv.URL+path, token, body)
		a := answer{code: code, header: header, body: string(b)}
		if strings.HasPrefix(header.Get("Content-Type"), "application/json") {
			if err := json.Unmarshal(b, &a.json); err != nil {
				t.Fatalf("%s %s: %v in %q", method, path, err, b)
			}
		}
		for _, secret := range []string{key.Reveal(), readTok, adminTok} {
			if strings.Contains(a.body, secret) {
				t.Errorf("%s %s shows a secret: %s", method, path, a.body)
			}
		}
		return a
	}
	expect := func(a answer, code int, errText string) {
		t.Helper()
		if a.code != code {
			t.Errorf("HTTP %d, want %d: %s", a.code, code, a.body)
		}
		if errText != "" && !strings.Contains(a.json["error"].(string), errText) {
			t.Errorf("error %q, want it to contain %q", a.json["error"], errText)
		}
	}
	rotations := "/v1/deployments/prod/rotations"

	t.Run("no token, bad token, read token on an admin route", func(t *testing.T) {
		for _, r := range [][2]string{{"GET", "/v1/deployments"}, {"GET", "/v1/rotations/x"}, {"GET", "/metrics"}, {"POST", rotations}} {
			a := call(r[0], r[1], "", "")
			expect(a, 401, "a bearer token is required")
			if got := a.header.Get("WWW-Authenticate"); got != `Bearer realm="qdrant-rotator"` {
				t.Errorf("%s: WWW-Authenticate %q", r[1], got)
			}
			a = call(r[0], r[1], adminTok+"x", "")
			expect(a, 401, "the bearer token is not valid")
			if got := a.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
				t.Errorf("%s: WWW-Authenticate %q", r[1], got)
			}
		}
		expect(call("POST", rotations, readTok, `{"dry_run":true}`), 403, `token "grafana" may only read`)
	})
	t.Run("health needs no token", func(t *testing.T) {
		if a := call("GET", "/healthz", "", ""); a.code != 200 || a.json["status"] != "ok" {
			t.Errorf("/healthz: %d %s", a.code, a.body)
		}
		if a := call("GET", "/readyz", "", ""); a.code != 200 || a.json["status"] != "ready" {
			t.Errorf("/readyz: %d %s", a.code, a.body)
		}
	})
	t.Run("bad bodies and path parameters", func(t *testing.T) {
		for body, want := range map[string]string{
			`{"dry_run":"yes"}`:             "request body: json: cannot unmarshal string",
			`{"dry_run":true,"force":true}`: `json: unknown field "force"`,
			`{"dry_run":true} {}`:           "one JSON object expected",
			`[`:                             "request body: unexpected EOF",
			`{"emergency":` + strings.Repeat(" ", 1<<16) + `true}`: "request body too large",
		} {
			a := call("POST", rotations, adminTok, body)
			expect(a, 400, want)
			if !strings.Contains(a.json["error"].(string), `(want {"emergency": bool, "dry_run": bool})`) && !strings.Contains(want, "one JSON") {
				t.Errorf("%.40q: the message does not say what is wanted: %s", body, a.json["error"])
			}
		}
		expect(call("POST", "/v1/deployments/nope/rotations", adminTok, `{}`), 404, `unknown deployment "nope"`)
		expect(call("POST", "/v1/deployments/pr%2Fod/rotations", adminTok, `{}`), 404, `unknown deployment "pr/od"`)
		expect(call("GET", "/v1/rotations/run-nope", readTok, ""), 404, `unknown rotation "run-nope"`)
		expect(call("GET", "/v1/rotations/%00", readTok, ""), 404, `unknown rotation "\x00"`)
		if a := call("DELETE", "/v1/deployments", adminTok, ""); a.code != 405 || !strings.Contains(a.header.Get("Allow"), "GET") {
			t.Errorf("DELETE /v1/deployments: %d, Allow %q", a.code, a.header.Get("Allow"))
		}
		if a := call("GET", rotations, adminTok, ""); a.code != 405 {
			t.Errorf("GET %s: %d, want 405", rotations, a.code)
		}
		if a := call("GET", "/v1/nothing", adminTok, ""); a.code != 404 {
			t.Errorf("GET /v1/nothing: %d, want 404", a.code)
		}
	})
	t.Run("a rotation: 202, 409 while it runs, its state", func(t *testing.T) {
		a := call("POST", rotations, adminTok, `{}`)
		expect(a, 202, "")
		id, _ := a.json["id"].(string)
		loc := "/v1/rotations/" + id
		if id == "" || a.header.Get("Location") != loc || a.json["status_url"] != loc || a.json["deployment"] != "prod" {
			t.Fatalf("202: Location %q, body %s", a.header.Get("Location"), a.body)
		}
		a = call("POST", rotations, adminTok, `{"dry_run":true}`)
		expect(a, 409, "a rotation of this deployment is in flight")
		if a.json["running_rotation_id"] != id {
			t.Errorf("409 names %v, want %s", a.json["running_rotation_id"], id)
		}
		for _, tok := range []string{readTok, adminTok} {
			a = call("GET", loc, tok, "")
			if a.code != 200 || a.json["state"] != string(rotation.RunRunning) || a.json["actor"] != "api:ops" || a.json["id"] != id {
				t.Errorf("GET %s while it runs: %d %s", loc, a.code, a.body)
			}
		}
		a = call("GET", "/v1/deployments", readTok, "")
		deps, _ := a.json["deployments"].([]any)
		if a.code != 200 || len(deps) != 1 || deps[0].(map[string]any)["running_run_id"] != id {
			t.Errorf("GET /v1/deployments while it runs: %d %s", a.code, a.body)
		}
		close(gate)
		if r := <-finished; r.ID != id || r.State != rotation.RunFailed || r.ErrorClass != rotation.ClassDrift {
			t.Errorf("the run ended %s %s (%s), want failed, drift", r.State, r.ErrorClass, r.Error)
		}
		a = call("GET", loc, readTok, "")
		if a.code != 200 || a.json["state"] != string(rotation.RunFailed) || a.json["error_class"] != rotation.ClassDrift {
			t.Errorf("GET %s after it ended: %d %s", loc, a.code, a.body)
		}
		a = call("GET", "/v1/deployments", readTok, "")
		if d := a.json["deployments"].([]any)[0].(map[string]any); d["last_run_id"] != id || d["last_outcome"] != string(rotation.RunFailed) {
			t.Errorf("GET /v1/deployments after the run: %s", a.body)
		}
		if !strings.Contains(a.body, fp.Of(key)) {
			t.Errorf("GET /v1/deployments does not name the current key by its fingerprint %s: %s", fp.Of(key), a.body)
		}
	})
	t.Run("a dry run", func(t *testing.T) {
		a := call("POST", rotations, adminTok, `{"dry_run":true,"emergency":true}`)
		expect(a, 202, "")
		r := <-finished
		if !r.DryRun || !r.Emergency || r.Actor != "api:ops" {
			t.Errorf("the dry run: %+v", r)
		}
		if a := call("GET", "/v1/rotations/"+r.ID, readTok, ""); a.code != 200 || a.json["dry_run"] != true {
			t.Errorf("GET the dry run: %d %s", a.code, a.body)
		}
	})
	t.Run("metrics for read and admin tokens", func(t *testing.T) {
		for _, tok := range []string{readTok, adminTok} {
			if a := call("GET", "/metrics", tok, ""); a.code != 200 || !strings.Contains(a.body, `rotator_key_age_seconds{deployment="prod",slot="admin"}`) {
				t.Errorf("/metrics: %d\n%s", a.code, a.body)
			}
		}
	})
	cancel()
	mgr.Wait()
}

// gatedNode holds every call until gate is closed: a run that stays in flight as long as a test needs.
type gatedNode struct {
	rotation.Node
	gate chan struct{}
}

func (n *gatedNode) Recover(ctx context.Context) error {
	<-n.gate
	return n.Node.Recover(ctx)
}

func (n *gatedNode) Keys(ctx context.Context) (rotation.Slots, error) {
	<-n.gate
	return n.Node.Keys(ctx)
}

func (n *gatedNode) Probe(ctx context.Context, k rotation.Key) error {
	<-n.gate
	return n.Node.Probe(ctx, k)
}

// send makes one request with a bearer token ("" for none) and returns the answer's status, header and body.
func send(t *testing.T, method, url, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
