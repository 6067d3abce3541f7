package conformance

import (
	"net/http"
	"testing"
	"time"
)

// expectOpen checks a node without any API key (qdrant.md §3: no auth middleware, "All requests have full by
// default access when API key is not configured"): whatever credential a request carries, or none, it gets full
// access; nothing is ever 401 or 403.
func expectOpen(t *testing.T, c *client) {
	t.Helper()
	random := newKey(t)
	readJWT := hs256(t, newKey(t), map[string]any{"exp": expIn(time.Hour), "access": "r"})
	for _, h := range []struct {
		what    string
		headers []header
	}{
		{"no credential", nil},
		{"a random api-key", []header{apiKey(random)}},
		{"a random Bearer token", []header{bearer(random)}},
		{"an empty api-key", []header{apiKey("")}},
		{"a non-ASCII api-key", []header{apiKey("k\u00e9y")}},
		{"a read-only JWT signed with some key", []header{apiKey(readJWT)}},
	} {
		expectStatus(t, "GET /collections with "+h.what, c.do(t, "GET", "/collections", "", h.headers...), http.StatusOK)
		name := newName(t, "open")
		expectResult(t, "create a collection with "+h.what, c.do(t, "PUT", "/collections/"+name, createBody, h.headers...), "true")
		upsertWait(t, c, "", name, 1)
		expectResult(t, "delete the collection with "+h.what, c.do(t, "DELETE", "/collections/"+name, "", h.headers...), "true")
	}
}

// openGroup: a node with no key at all accepts everything; the exempt paths answer as always (qdrant.md §1, §3,
// §3.4, §6). This is what a node whose keys were only in a file it could not read looks like (§2).
func openGroup() group {
	return group{name: "open", cases: []testCase{
		{name: "no_key_accepts_any_credential", spec: "§3 (no key: no auth middleware, full access)", run: func(t *testing.T, f *fixture) {
			_, c := startClient(t, f, Setup{Env: map[string]string{"RUN_MODE": runMode}})
			expectOpen(t, c)
		}},
		{name: "no_key_every_route_open_unknown_404", spec: "§3, §3.4 (no middleware: protected routes open, unknown path 404 not 401)", run: func(t *testing.T, f *fixture) {
			_, c := startClient(t, f, Setup{Env: map[string]string{"RUN_MODE": runMode}})
			for _, p := range []string{"/cluster", "/telemetry", "/metrics", "/collections/" + newName(t, "none") + "/exists"} {
				expectStatus(t, "GET "+p+" without credential", c.do(t, "GET", p, ""), http.StatusOK)
			}
			expectStatus(t, "unknown path without credential", c.do(t, "GET", "/no/such/route", ""), http.StatusNotFound)
			expectStatus(t, "unknown path with a random key", c.do(t, "GET", "/no/such/route", "", apiKey(newKey(t))), http.StatusNotFound)
		}},
		{name: "no_key_exempt_paths_answer", spec: "§3.4, §6 (/, /healthz, /livez, /readyz)", run: func(t *testing.T, f *fixture) {
			_, c := startClient(t, f, Setup{Env: map[string]string{"RUN_MODE": runMode}})
			for _, r := range exemptRoutes {
				for _, h := range [][]header{nil, {apiKey(newKey(t))}} {
					resp := c.do(t, "GET", r.path, "", h...)
					expectStatus(t, "GET "+r.path, resp, http.StatusOK)
					if string(resp.body) != r.body {
						t.Errorf("GET %s: body %q, want %q", r.path, snippet(resp.body), r.body)
					}
				}
			}
			expectStatus(t, "GET / with a random key", c.do(t, "GET", "/", "", apiKey(newKey(t))), http.StatusOK)
		}},
		{name: "jwt_rbac_without_key_stays_open", spec: "§1 (\"JWT RBAC configured but no API key set, JWT RBAC is not enabled\")", run: func(t *testing.T, f *fixture) {
			n, c := startClient(t, f, Setup{Env: map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__JWT_RBAC": "true"}})
			expectOpen(t, c)
			expectLogged(t, n, "JWT RBAC configured but no API key set, JWT RBAC is not enabled")
		}},
		{name: "alt_api_key_alone_turns_auth_on", spec: "§3 (middleware installed when any of the three keys is set)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{Env: map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__ALT_API_KEY": k}})
			expectAuthOn(t, c)
			expectRejected(t, c, "a random key", newKey(t))
			expectWrites(t, c, "alt_api_key", k)
		}},
	}}
}
