package conformance

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startKeyed returns a group start that runs one node with api_key, alt_api_key and read_only_api_key set in
// config/local.yaml (where the Helm chart puts them, qdrant.md §11), and jwt_rbac as given.
func startKeyed(jwtRBAC bool) func(t *testing.T, target Target) *fixture {
	return func(t *testing.T, target Target) *fixture {
		ks := keySet{api: newKey(t), alt: newKey(t), readOnly: newKey(t)}
		n := target.Start(t, Setup{
			Env: map[string]string{"RUN_MODE": runMode},
			Files: map[string]string{"config/local.yaml": yamlService(map[string]any{
				"api_key":           ks.api,
				"alt_api_key":       ks.alt,
				"read_only_api_key": ks.readOnly,
				"jwt_rbac":          jwtRBAC,
			})},
		})
		return &fixture{target: target, node: n, keys: ks, client: nodeClient(n)}
	}
}

// exemptRoutes are answered without credential (qdrant.md §3.4, §6), with their exact bodies.
var exemptRoutes = []struct{ path, body string }{
	{"/healthz", msgHealthz},
	{"/healthz/", msgHealthz},
	{"/livez", msgHealthz},
	{"/livez/", msgHealthz},
	{"/readyz", msgReadyz},
	{"/readyz/", msgReadyz},
}

// authGroup: REST authentication (qdrant.md §3, §6).
func authGroup() group {
	return group{name: "auth", start: startKeyed(true), cases: []testCase{
		{name: "no_credential_401_plain_text", spec: "§3.2 step 1, §3.3", run: func(t *testing.T, f *fixture) {
			for _, m := range []struct{ method, path, body string }{
				{"GET", "/collections", ""},
				{"PUT", "/collections/" + newName(t, "nokey"), createBody},
			} {
				expectPlain(t, "no credential on "+m.method+" "+m.path, f.client.do(t, m.method, m.path, m.body), http.StatusUnauthorized, msgNoCredential)
			}
		}},
		{name: "wrong_key_401_plain_text", spec: "§3.2 step 6, §3.3", run: func(t *testing.T, f *fixture) {
			expectRejected(t, f.client, "a random wrong key", newKey(t))
			expectPlain(t, "wrong key as Bearer", f.client.do(t, "GET", "/collections", "", bearer(newKey(t))), http.StatusUnauthorized, msgInvalidKey)
		}},
		{name: "api_key_header_grants_write", spec: "§3.2 step 2", run: func(t *testing.T, f *fixture) {
			expectWrites(t, f.client, "api_key in api-key header", f.keys.api)
		}},
		{name: "api_key_as_bearer_grants_write", spec: "§3.1 (plain key as Bearer works)", run: func(t *testing.T, f *fixture) {
			name := newName(t, "bearer")
			expectResult(t, "create with api_key as Bearer", f.client.do(t, "PUT", "/collections/"+name, createBody, bearer(f.keys.api)), "true")
		}},
		{name: "header_names_case_insensitive", spec: "§3.1", run: func(t *testing.T, f *fixture) {
			for _, h := range []header{
				{"API-KEY", f.keys.api},
				{"Api-Key", f.keys.api},
				{"authorization", "Bearer " + f.keys.api},
				{"AUTHORIZATION", "Bearer " + f.keys.api},
			} {
				expectStatus(t, "header spelled "+h.name, f.client.do(t, "GET", "/collections", "", h), http.StatusOK)
			}
		}},
		{name: "api_key_header_wins_over_authorization", spec: "§3.1 (api-key present => Authorization ignored)", run: func(t *testing.T, f *fixture) {
			cases := []struct {
				what    string
				headers []header
				status  int
				body    string
			}{
				{"wrong api-key + valid Bearer", []header{apiKey(newKey(t)), bearer(f.keys.api)}, http.StatusUnauthorized, msgInvalidKey},
				{"empty api-key + valid Bearer", []header{apiKey(""), bearer(f.keys.api)}, http.StatusUnauthorized, msgInvalidKey},
				{"valid api-key + wrong Bearer", []header{apiKey(f.keys.api), bearer(newKey(t))}, http.StatusOK, ""},
				{"read-only api-key + valid Bearer", []header{apiKey(f.keys.readOnly), bearer(f.keys.api)}, http.StatusForbidden, ""},
			}
			for _, c := range cases {
				if c.status == http.StatusForbidden {
					r := f.client.do(t, "PUT", "/collections/"+newName(t, "prec"), createBody, c.headers...)
					expectError(t, c.what+" on create", r, c.status, msgGlobalManage, true)
					continue
				}
				r := f.client.do(t, "GET", "/collections", "", c.headers...)
				if c.body != "" {
					expectPlain(t, c.what, r, c.status, c.body)
				} else {
					expectStatus(t, c.what, r, c.status)
				}
			}
		}},
		{name: "non_ascii_api_key_header_is_absent", spec: "§3.1 (non-visible-ASCII value => header absent)", run: func(t *testing.T, f *fixture) {
			const odd = "k\u00e9y" // UTF-8 bytes outside visible ASCII
			expectPlain(t, "non-ASCII api-key alone", f.client.do(t, "GET", "/collections", "", apiKey(odd)), http.StatusUnauthorized, msgNoCredential)
			expectStatus(t, "non-ASCII api-key + valid Bearer (Bearer used)", f.client.do(t, "GET", "/collections", "", apiKey(odd), bearer(f.keys.api)), http.StatusOK)
		}},
		{name: "bearer_prefix_case_sensitive", spec: "§3.1 (bearer x / Basic x = no credential)", run: func(t *testing.T, f *fixture) {
			for _, v := range []struct{ what, value string }{
				{"lower-case bearer", "bearer " + f.keys.api},
				{"upper-case BEARER", "BEARER " + f.keys.api},
				{"Basic scheme", "Basic " + f.keys.api},
				{"no scheme", f.keys.api},
			} {
				r := f.client.do(t, "GET", "/collections", "", header{"Authorization", v.value})
				expectPlain(t, "Authorization with "+v.what, r, http.StatusUnauthorized, msgNoCredential)
			}
		}},
		{name: "bearer_prefix_exactly_one_space", spec: "§3.1, §3.2 (no trimming)", run: func(t *testing.T, f *fixture) {
			r := f.client.do(t, "GET", "/collections", "", header{"Authorization", "Bearer  " + f.keys.api})
			expectPlain(t, "Bearer with two spaces", r, http.StatusUnauthorized, msgInvalidKey)
		}},
		{name: "key_comparison_is_exact", spec: "§3.2 (ct_eq, exact match)", run: func(t *testing.T, f *fixture) {
			k := f.keys.api
			for _, v := range []struct{ what, key string }{
				{"api_key with a character appended", k + "x"},
				{"api_key without its last character", k[:len(k)-1]},
				{"api_key upper-cased", strings.ToUpper(k)},
				{"read_only key with a character appended", f.keys.readOnly + "x"},
			} {
				if v.key == k {
					continue // upper-casing changed nothing; cannot happen with 43 random characters
				}
				expectRejected(t, f.client, v.what, v.key)
			}
		}},
		{name: "alt_api_key_like_api_key", spec: "§1 alt_api_key, §3.2 step 2", run: func(t *testing.T, f *fixture) {
			expectWrites(t, f.client, "alt_api_key in api-key header", f.keys.alt)
			name := newName(t, "alt")
			expectResult(t, "create with alt_api_key as Bearer", f.client.do(t, "PUT", "/collections/"+name, createBody, bearer(f.keys.alt)), "true")
			upsertWait(t, f.client, f.keys.alt, name, 2)
		}},
		{name: "read_only_key_reads", spec: "§3.5 (read-only allowed)", run: func(t *testing.T, f *fixture) {
			name := newName(t, "roread")
			createCollection(t, f.client, f.keys.api, name)
			upsertWait(t, f.client, f.keys.api, name, 2)
			ro := f.keys.readOnly
			expectStatus(t, "read-only GET /collections", f.client.do(t, "GET", "/collections", "", apiKey(ro)), http.StatusOK)
			expectStatus(t, "read-only GET /collections/{c}", f.client.do(t, "GET", "/collections/"+name, "", apiKey(ro)), http.StatusOK)
			expectResult(t, "read-only exists", f.client.do(t, "GET", "/collections/"+name+"/exists", "", bearer(ro)), `{"exists":true}`)
			if n := countPoints(t, f.client, ro, name); n != 2 {
				t.Errorf("read-only count: %d points, want 2", n)
			}
			r := f.client.do(t, "POST", "/collections/"+name+"/points", `{"ids":[1]}`, apiKey(ro))
			expectStatus(t, "read-only retrieve points", r, http.StatusOK)
		}},
		{name: "read_only_key_write_forbidden", spec: "§3.3 (403 JSON envelope), §3.5", run: func(t *testing.T, f *fixture) {
			name := newName(t, "rowrite")
			createCollection(t, f.client, f.keys.api, name)
			ro := f.keys.readOnly
			for _, w := range []struct{ what, method, path, body string }{
				{"create collection", "PUT", "/collections/" + newName(t, "rocreate"), createBody},
				{"upsert points", "PUT", "/collections/" + name + "/points?wait=true", points(1)},
				{"delete collection", "DELETE", "/collections/" + name, ""},
			} {
				r := f.client.do(t, w.method, w.path, w.body, apiKey(ro))
				expectError(t, "read-only key: "+w.what, r, http.StatusForbidden, msgGlobalManage, true)
			}
			expectResult(t, "collection still exists after the refused delete", f.client.do(t, "GET", "/collections/"+name+"/exists", "", apiKey(f.keys.api)), `{"exists":true}`)
		}},
		{name: "exempt_routes_without_key", spec: "§3.4, §6", run: func(t *testing.T, f *fixture) {
			for _, e := range exemptRoutes {
				r := f.client.do(t, "GET", e.path, "")
				expectStatus(t, "GET "+e.path+" without key", r, http.StatusOK)
				if string(r.body) != e.body {
					t.Errorf("GET %s: body %q, want %q", e.path, snippet(r.body), e.body)
				}
			}
			expectStatus(t, "GET / without key", f.client.do(t, "GET", "/", ""), http.StatusOK)
		}},
		{name: "exempt_routes_ignore_wrong_key", spec: "§3.4, §7.1 (succeed with any or no key)", run: func(t *testing.T, f *fixture) {
			wrong := newKey(t)
			for _, p := range []string{"/", "/healthz", "/livez", "/readyz"} {
				expectStatus(t, "GET "+p+" with a wrong api-key", f.client.do(t, "GET", p, "", apiKey(wrong)), http.StatusOK)
				expectStatus(t, "GET "+p+" with a wrong Bearer", f.client.do(t, "GET", p, "", bearer(wrong)), http.StatusOK)
			}
		}},
		{name: "non_exempt_routes_need_key", spec: "§3.4 (not exempt; read-only key suffices)", run: func(t *testing.T, f *fixture) {
			for _, p := range []string{"/metrics", "/cluster", "/telemetry", "/collections", "/collections/" + newName(t, "x") + "/exists"} {
				expectPlain(t, "GET "+p+" without key", f.client.do(t, "GET", p, ""), http.StatusUnauthorized, msgNoCredential)
				expectStatus(t, "GET "+p+" with read-only key", f.client.do(t, "GET", p, "", apiKey(f.keys.readOnly)), http.StatusOK)
			}
		}},
		{name: "unknown_path_401_then_404", spec: "§3.4, §12.2", run: func(t *testing.T, f *fixture) {
			const p = "/no_such_route/at_all"
			expectPlain(t, "unknown path without key", f.client.do(t, "GET", p, ""), http.StatusUnauthorized, msgNoCredential)
			expectPlain(t, "unknown path with a wrong key", f.client.do(t, "GET", p, "", apiKey(newKey(t))), http.StatusUnauthorized, msgInvalidKey)
			r := f.client.do(t, "GET", p, "", apiKey(f.keys.api))
			expectStatus(t, "unknown path with api_key", r, http.StatusNotFound)
			if len(r.body) != 0 {
				t.Errorf("unknown path with api_key: body %q, want empty", snippet(r.body))
			}
		}},
		{name: "cors_preflight_without_key", spec: "§3 (CORS before auth)", run: func(t *testing.T, f *fixture) {
			r := f.client.do(t, "OPTIONS", "/collections", "",
				header{"Origin", "http://127.0.0.1:9"},
				header{"Access-Control-Request-Method", "PUT"})
			expectStatus(t, "CORS preflight without key", r, http.StatusOK)
			if r.header.Get("Access-Control-Allow-Origin") == "" {
				t.Errorf("CORS preflight: no Access-Control-Allow-Origin header")
			}
		}},
		{name: "health_endpoints_text_plain", spec: "§6", run: func(t *testing.T, f *fixture) {
			for _, p := range []string{"/healthz", "/livez", "/readyz"} {
				r := f.client.do(t, "GET", p, "")
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("GET %s: Content-Type %q, want text/plain", p, ct)
				}
			}
		}},
		{name: "root_version_info_without_envelope", spec: "§6 GET /", run: func(t *testing.T, f *fixture) {
			r := f.client.do(t, "GET", "/", "")
			expectStatus(t, "GET /", r, http.StatusOK)
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &raw); err != nil {
				t.Fatalf("GET /: body is not a JSON object: %v", err)
			}
			var title, version string
			if json.Unmarshal(raw["title"], &title) != nil || title != versionInfoTitle {
				t.Errorf("GET /: title %s, want %q", raw["title"], versionInfoTitle)
			}
			if json.Unmarshal(raw["version"], &version) != nil || !semverRE.MatchString(version) {
				t.Errorf("GET /: version %s, want a x.y.z version string", raw["version"])
			}
			for _, k := range []string{"result", "status", "time"} {
				if _, has := raw[k]; has {
					t.Errorf("GET /: has envelope key %q, want VersionInfo without envelope", k)
				}
			}
		}},
		{name: "cluster_disabled", spec: "§7 GET /cluster", run: func(t *testing.T, f *fixture) {
			expectResult(t, "GET /cluster", f.client.do(t, "GET", "/cluster", "", apiKey(f.keys.api)), `{"status":"disabled"}`)
		}},
	}}
}

// sameKeyGroup: api_key equal to read_only_api_key, jwt_rbac off.
func sameKeyGroup() group {
	start := func(t *testing.T, target Target) *fixture {
		k := newKey(t)
		n := target.Start(t, Setup{
			Env: map[string]string{"RUN_MODE": runMode},
			Files: map[string]string{"config/local.yaml": yamlService(map[string]any{
				"api_key":           k,
				"read_only_api_key": k,
			})},
		})
		return &fixture{target: target, node: n, keys: keySet{api: k, readOnly: k}, client: nodeClient(n)}
	}
	return group{name: "samekey", start: start, cases: []testCase{
		{name: "api_key_equal_read_only_key_gives_write", spec: "§3.2 (write checked first)", run: func(t *testing.T, f *fixture) {
			expectWrites(t, f.client, "key that is both api_key and read_only_api_key", f.keys.api)
		}},
		{name: "jwt_rbac_off_jwt_is_a_wrong_key", spec: "§3.3 (wrong key, jwt_rbac off), §5", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, f.keys.api, map[string]any{"exp": expIn(time.Hour)})
			expectRejected(t, f.client, "valid JWT with jwt_rbac off", tok)
			expectPlain(t, "valid JWT as Bearer with jwt_rbac off", f.client.do(t, "GET", "/collections", "", bearer(tok)), http.StatusUnauthorized, msgInvalidKey)
		}},
	}}
}
