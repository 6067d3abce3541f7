package conformance

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The audit log (qdrant.md §11b): the entries requests leave, read back through POST /audit/logs. Real Qdrant
// writes entries through a non-blocking writer, so a case waits (bounded) until the entries it made are readable;
// a case that expects no entry makes a later marked request and waits for that one instead.

// auditWait bounds how long a case waits for its entries to become readable.
const auditWait = 10 * time.Second

// auditEntry is one entry of POST /audit/logs; present lists the keys the entry has.
type auditEntry struct {
	fields  map[string]string
	present []string
}

func (e auditEntry) get(k string) string { return e.fields[k] }

// auditFields are the fields of an entry besides timestamp and remote, which every entry has and cases check
// by shape.
var auditFields = []string{"method", "api", "auth_type", "subject", "collection", "tracing_id", "result", "error"}

// queryAudit posts body to /audit/logs with key and returns the raw answer.
func queryAudit(t *testing.T, c *client, key, query, body string) response {
	t.Helper()
	return c.do(t, "POST", "/audit/logs"+query, body, apiKey(key))
}

// auditEntries posts body and decodes the entries of the 200 answer; the case stops on any other answer.
func auditEntries(t *testing.T, c *client, key, body string) []auditEntry {
	t.Helper()
	r := queryAudit(t, c, key, "", body)
	res := expectOK(t, "POST /audit/logs "+body, r)
	if res == nil {
		t.FailNow()
	}
	var out struct {
		Entries []map[string]any `json:"entries"`
	}
	if err := json.Unmarshal(res, &out); err != nil || out.Entries == nil {
		t.Fatalf("POST /audit/logs %s: result %s, want {\"entries\":[...]}", body, snippet(res))
	}
	entries := make([]auditEntry, 0, len(out.Entries))
	for _, m := range out.Entries {
		e := auditEntry{fields: map[string]string{}}
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				t.Errorf("entry field %q is %v, want a string: %v", k, v, m)
			}
			e.fields[k] = s
			e.present = append(e.present, k)
		}
		slices.Sort(e.present)
		entries = append(entries, e)
	}
	return entries
}

// waitAudit returns the entries matching body once there are at least n of them.
func waitAudit(t *testing.T, c *client, key, body string, n int) []auditEntry {
	t.Helper()
	deadline := time.Now().Add(auditWait)
	for {
		es := auditEntries(t, c, key, body)
		if len(es) >= n || time.Now().After(deadline) {
			if len(es) < n {
				t.Fatalf("POST /audit/logs %s: %d entries after %s, want at least %d", body, len(es), auditWait, n)
			}
			return es
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// byTracing is a request body selecting the entries of one tracing id (plus extra filters).
func byTracing(id string, extra ...string) string {
	f := map[string]string{"tracing_id": id}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i]] = extra[i+1]
	}
	b, _ := json.Marshal(map[string]any{"filters": f})
	return string(b)
}

func traced(id string) header { return header{"x-request-id", id} }

// expectEntry checks the fields of an entry: those in want with these exact values, the other fields of
// auditFields absent; timestamp is RFC 3339 UTC and remote an IP address without port.
func expectEntry(t *testing.T, what string, e auditEntry, want map[string]string) {
	t.Helper()
	for _, k := range auditFields {
		got, has := e.fields[k]
		w, wanted := want[k]
		switch {
		case wanted && !has:
			t.Errorf("%s: no %q, want %q (entry %v)", what, k, w, e.fields)
		case wanted && got != w:
			t.Errorf("%s: %s %q, want %q", what, k, got, w)
		case !wanted && has:
			t.Errorf("%s: %s %q present, want the field omitted", what, k, got)
		}
	}
	ts := e.get("timestamp")
	if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || tm.Location() != time.UTC {
		t.Errorf("%s: timestamp %q, want RFC 3339 in UTC with Z", what, ts)
	}
	if _, ok := want["remote"]; !ok && net.ParseIP(e.get("remote")) == nil {
		t.Errorf("%s: remote %q, want the client's IP address without port", what, e.get("remote"))
	}
	if r, ok := want["remote"]; ok && e.get("remote") != r {
		t.Errorf("%s: remote %q, want %q", what, e.get("remote"), r)
	}
}

// one returns the single entry of es, failing the case otherwise.
func one(t *testing.T, what string, es []auditEntry) auditEntry {
	t.Helper()
	if len(es) != 1 {
		var all []map[string]string
		for _, e := range es {
			all = append(all, e.fields)
		}
		t.Fatalf("%s: %d entries, want 1: %v", what, len(es), all)
	}
	return es[0]
}

// expectNotLogged checks requests made with tracing id quiet left no entry: it makes a later request with its
// own marker, waits for that entry, then expects none for quiet.
func expectNotLogged(t *testing.T, c *client, key, quiet, what string) {
	t.Helper()
	sentinel := newName(t, "sentinel")
	c.do(t, "GET", "/collections", "", apiKey(key), traced(sentinel))
	waitAudit(t, c, key, byTracing(sentinel), 1)
	if es := auditEntries(t, c, key, byTracing(quiet)); len(es) != 0 {
		t.Errorf("%s: %d entries, want none: %v", what, len(es), es[0].fields)
	}
}

// startAudited runs one node with the three keys in config/local.yaml, jwt_rbac on and audit logging on.
func startAudited(t *testing.T, target Target) *fixture {
	ks := keySet{api: newKey(t), alt: newKey(t), readOnly: newKey(t)}
	n := target.Start(t, Setup{
		Env: map[string]string{"RUN_MODE": runMode, "QDRANT__AUDIT__ENABLED": "true"},
		Files: map[string]string{"config/local.yaml": yamlService(map[string]any{
			"api_key": ks.api, "alt_api_key": ks.alt, "read_only_api_key": ks.readOnly, "jwt_rbac": true,
		})},
	})
	return &fixture{target: target, node: n, keys: ks, client: nodeClient(n)}
}

// auditGroup: what requests leave in the audit log and how POST /audit/logs reads it (qdrant.md §11b).
func auditGroup() group {
	return group{name: "audit", start: startAudited, cases: []testCase{
		{name: "refused_request_logged_as_none_with_path", spec: "§11b (auth middleware refusal: auth_type None, no method, api = path, denied)", run: func(t *testing.T, f *fixture) {
			id := newName(t, "refused")
			c := f.client
			expectPlain(t, "wrong key", c.do(t, "GET", "/collections", "", apiKey(newKey(t)), traced(id+"-wrong"),
				header{"X-Forwarded-For", "203.0.113.7"}), http.StatusUnauthorized, msgInvalidKey)
			expectStatus(t, "no key, trailing slash", c.do(t, "GET", "/collections/", "", traced(id+"-none")), http.StatusUnauthorized)
			expectStatus(t, "no key, unknown route", c.do(t, "GET", "/no/such/route", "", traced(id+"-route")), http.StatusUnauthorized)
			e := one(t, "wrong key", waitAudit(t, c, f.keys.api, byTracing(id+"-wrong"), 1))
			expectEntry(t, "wrong key", e, map[string]string{"api": "/collections", "auth_type": "None",
				"tracing_id": id + "-wrong", "result": "denied", "error": "Unauthorized: " + msgInvalidKey})
			if e.get("remote") == "203.0.113.7" {
				t.Errorf("remote taken from X-Forwarded-For without trust_forwarded_headers")
			}
			expectEntry(t, "no key", one(t, "no key", waitAudit(t, c, f.keys.api, byTracing(id+"-none"), 1)), map[string]string{
				"api": "/collections", "auth_type": "None", "tracing_id": id + "-none", "result": "denied",
				"error": "Unauthorized: " + msgNoCredential})
			expectEntry(t, "unknown route", one(t, "unknown route", waitAudit(t, c, f.keys.api, byTracing(id+"-route"), 1)), map[string]string{
				"api": "/no/such/route", "auth_type": "None", "tracing_id": id + "-route", "result": "denied",
				"error": "Unauthorized: " + msgNoCredential})
		}},
		{name: "api_key_checks_logged_with_operation_names", spec: "§11b (handler access checks: method, ApiKey, ok)", run: func(t *testing.T, f *fixture) {
			id := newName(t, "ok")
			name := newName(t, "audited")
			c, k := f.client, f.keys.api
			expectStatus(t, "list", c.do(t, "GET", "/collections", "", apiKey(k), traced(id)), http.StatusOK)
			expectResult(t, "create", c.do(t, "PUT", "/collections/"+name, createBody, bearer(f.keys.alt), traced(id)), "true")
			expectStatus(t, "upsert", c.do(t, "PUT", "/collections/"+name+"/points?wait=true", points(2), apiKey(k), traced(id)), http.StatusOK)
			expectStatus(t, "count", c.do(t, "POST", "/collections/"+name+"/points/count", `{"exact":true}`, apiKey(k), traced(id)), http.StatusOK)
			expectStatus(t, "get", c.do(t, "GET", "/collections/"+name, "", apiKey(k), traced(id)), http.StatusOK)
			expectStatus(t, "exists", c.do(t, "GET", "/collections/"+name+"/exists", "", apiKey(k), traced(id)), http.StatusOK)
			es := waitAudit(t, c, k, byTracing(id), 6)
			if len(es) != 6 {
				t.Fatalf("%d entries, want 6 (one per request)", len(es))
			}
			ok := func(method, api, coll string) map[string]string {
				m := map[string]string{"method": method, "api": api, "auth_type": "ApiKey", "tracing_id": id, "result": "ok"}
				if coll != "" {
					m["collection"] = coll
				}
				return m
			}
			base := "/collections/" + name
			for i, want := range []map[string]string{ // newest first
				ok("collection_exists", base+"/exists", name),
				ok("get_collection", base, name),
				ok("count", base+"/points/count", name),
				ok("upsert_points", base+"/points", name),
				ok("create_collection", base, ""),
				ok("list_collections", "/collections", ""),
			} {
				expectEntry(t, fmt.Sprintf("entry %d (%s)", i, want["method"]), es[i], want)
			}
		}},
		{name: "read_only_key_denied_in_handler", spec: "§11b (denied access check: method, ApiKey, error), §3.5", run: func(t *testing.T, f *fixture) {
			id, name := newName(t, "ro"), newName(t, "ro")
			c := f.client
			expectStatus(t, "read-only list", c.do(t, "GET", "/collections", "", apiKey(f.keys.readOnly), traced(id)), http.StatusOK)
			expectError(t, "read-only create", c.do(t, "PUT", "/collections/"+name, createBody, apiKey(f.keys.readOnly), traced(id)),
				http.StatusForbidden, msgGlobalManage, true)
			es := waitAudit(t, c, f.keys.api, byTracing(id), 2)
			expectEntry(t, "read-only create", es[0], map[string]string{"method": "create_collection", "api": "/collections/" + name,
				"auth_type": "ApiKey", "tracing_id": id, "result": "denied", "error": msgGlobalManage})
			expectEntry(t, "read-only list", es[1], map[string]string{"method": "list_collections", "api": "/collections",
				"auth_type": "ApiKey", "tracing_id": id, "result": "ok"})
		}},
		{name: "jwt_subject_logged_refused_jwt_as_none", spec: "§11b (auth_type Jwt, subject claim), §5", run: func(t *testing.T, f *fixture) {
			id := newName(t, "jwt")
			c := f.client
			tok := hs256(t, f.keys.api, map[string]any{"exp": expIn(time.Hour), "access": "r", "subject": "alice"})
			old := hs256(t, f.keys.api, map[string]any{"exp": expIn(-time.Hour)})
			expectStatus(t, "JWT read", c.do(t, "GET", "/collections", "", bearer(tok), traced(id+"-ok")), http.StatusOK)
			expectPlain(t, "expired JWT", c.do(t, "GET", "/collections", "", apiKey(old), traced(id+"-old")), http.StatusForbidden, msgExpired)
			expectEntry(t, "JWT read", one(t, "JWT read", waitAudit(t, c, f.keys.api, byTracing(id+"-ok"), 1)), map[string]string{
				"method": "list_collections", "api": "/collections", "auth_type": "Jwt", "subject": "alice",
				"tracing_id": id + "-ok", "result": "ok"})
			expectEntry(t, "expired JWT", one(t, "expired JWT", waitAudit(t, c, f.keys.api, byTracing(id+"-old"), 1)), map[string]string{
				"api": "/collections", "auth_type": "None", "tracing_id": id + "-old", "result": "denied",
				"error": "Forbidden: " + msgExpired})
		}},
		{name: "exempt_paths_metrics_telemetry_not_logged", spec: "§11b (exempt paths not logged), §3.4; /metrics and /telemetry use unlogged access", run: func(t *testing.T, f *fixture) {
			id := newName(t, "quiet")
			c := f.client
			for _, r := range exemptRoutes {
				c.do(t, "GET", r.path, "", traced(id))
				c.do(t, "GET", r.path, "", apiKey(f.keys.api), traced(id))
			}
			c.do(t, "GET", "/", "", traced(id))
			expectStatus(t, "metrics", c.do(t, "GET", "/metrics", "", apiKey(f.keys.api), traced(id)), http.StatusOK)
			expectStatus(t, "telemetry", c.do(t, "GET", "/telemetry", "", apiKey(f.keys.api), traced(id)), http.StatusOK)
			expectStatus(t, "unknown route with a key", c.do(t, "GET", "/no/such/route", "", apiKey(f.keys.api), traced(id)), http.StatusNotFound)
			expectNotLogged(t, c, f.keys.api, id, "exempt paths, /metrics, /telemetry, unknown route with a key")
		}},
		{name: "tracing_id_header_order_and_256_bytes", spec: "§11b (x-request-id, x-tracing-id or traceparent, max 256 bytes)", run: func(t *testing.T, f *fixture) {
			id := newName(t, "trace")
			long := id + strings.Repeat("x", 300-len(id))
			c := f.client
			c.do(t, "GET", "/collections", "", apiKey(f.keys.api), header{"x-tracing-id", long}, header{"traceparent", id + "-tp"})
			c.do(t, "GET", "/collections", "", apiKey(f.keys.api), header{"traceparent", id + "-only"})
			c.do(t, "GET", "/collections", "", apiKey(f.keys.api), traced(id+"-rid"), header{"x-tracing-id", id + "-tid"})
			one(t, "x-tracing-id cut to 256 bytes", waitAudit(t, c, f.keys.api, byTracing(long[:256]), 1))
			one(t, "traceparent alone", waitAudit(t, c, f.keys.api, byTracing(id+"-only"), 1))
			one(t, "x-request-id before x-tracing-id", waitAudit(t, c, f.keys.api, byTracing(id+"-rid"), 1))
			for _, other := range []string{id + "-tp", id + "-tid", long} {
				if es := auditEntries(t, c, f.keys.api, byTracing(other)); len(es) != 0 {
					t.Errorf("tracing id %.40q... used, want the header of higher priority (or the cut value)", other)
				}
			}
		}},
		{name: "filters_match_exact_values", spec: "§11b (filters {field: exact value})", run: func(t *testing.T, f *fixture) {
			id := newName(t, "filter")
			c, k := f.client, f.keys.api
			c.do(t, "GET", "/collections", "", apiKey(k), traced(id))
			c.do(t, "GET", "/collections", "", apiKey(newKey(t)), traced(id))
			waitAudit(t, c, k, byTracing(id), 2)
			for _, tc := range []struct {
				what string
				body string
				want int
			}{
				{"result ok", byTracing(id, "result", "ok"), 1},
				{"result denied", byTracing(id, "result", "denied"), 1},
				{"auth_type and method", byTracing(id, "auth_type", "ApiKey", "method", "list_collections"), 1},
				{"api", byTracing(id, "api", "/collections"), 2},
				{"error text", byTracing(id, "error", "Unauthorized: "+msgInvalidKey), 1},
				{"a prefix is no match", byTracing(id[:len(id)-1]), 0},
				{"a field the entries lack", byTracing(id, "subject", "alice"), 0},
				{"a name that is no field matches nothing (no error)", byTracing(id, "no_such_field", "x"), 0},
			} {
				if es := auditEntries(t, c, k, tc.body); len(es) != tc.want {
					t.Errorf("%s: %d entries, want %d", tc.what, len(es), tc.want)
				}
			}
		}},
		{name: "newest_first_limit_and_time_range", spec: "§11b (newest first; limit; time_from inclusive, time_to exclusive)", run: func(t *testing.T, f *fixture) {
			id := newName(t, "range")
			c, k := f.client, f.keys.api
			var names []string
			for i := 0; i < 4; i++ {
				names = append(names, newName(t, fmt.Sprint("r", i)))
				c.do(t, "GET", "/collections/"+names[i]+"/exists", "", apiKey(k), traced(id))
			}
			all := waitAudit(t, c, k, byTracing(id), 4)
			var got []string
			stamps := make([]time.Time, len(all))
			for i, e := range all {
				got = append(got, e.get("collection"))
				stamps[i], _ = time.Parse(time.RFC3339Nano, e.get("timestamp"))
				if i > 0 && stamps[i].After(stamps[i-1]) {
					t.Errorf("entry %d is newer than entry %d: not newest first", i, i-1)
				}
			}
			if want := []string{names[3], names[2], names[1], names[0]}; !slices.Equal(got, want) {
				t.Fatalf("entries %v, want the requests newest first %v", got, want)
			}
			limited := auditEntries(t, c, k, `{"limit":2,"filters":{"tracing_id":"`+id+`"}}`)
			if len(limited) != 2 || limited[0].get("collection") != names[3] || limited[1].get("collection") != names[2] {
				t.Errorf("limit 2: %d entries, want the 2 newest", len(limited))
			}
			from, to := all[2].get("timestamp"), all[0].get("timestamp") // the 2nd request (inclusive) to the 4th (exclusive)
			var want []string
			for i, e := range all {
				if !stamps[i].Before(stamps[2]) && stamps[i].Before(stamps[0]) {
					want = append(want, e.get("collection"))
				}
			}
			ranged := auditEntries(t, c, k, `{"time_from":"`+from+`","time_to":"`+to+`","filters":{"tracing_id":"`+id+`"}}`)
			var gotRange []string
			for _, e := range ranged {
				gotRange = append(gotRange, e.get("collection"))
			}
			if !slices.Equal(gotRange, want) {
				t.Errorf("time_from %s, time_to %s: %v, want %v", from, to, gotRange, want)
			}
		}},
		{name: "limit_outside_1_to_10000_is_422", spec: "§11b (limit 1..10000; validator error, §9 envelope)", run: func(t *testing.T, f *fixture) {
			for _, n := range []int{0, 10001} {
				r := queryAudit(t, f.client, f.keys.api, "", fmt.Sprintf(`{"limit":%d}`, n))
				expectError(t, fmt.Sprintf("limit %d", n), r, http.StatusUnprocessableEntity,
					fmt.Sprintf("Validation error in JSON body: [limit: value %d invalid, must be from 1 to 10000]", n), true)
			}
			expectOK(t, "limit 10000", queryAudit(t, f.client, f.keys.api, "", `{"limit":10000}`))
			expectError(t, "limit -1", queryAudit(t, f.client, f.keys.api, "", `{"limit":-1}`), http.StatusBadRequest,
				"Format error in JSON body", false)
			expectError(t, "time_from not a date", queryAudit(t, f.client, f.keys.api, "", `{"time_from":"yesterday"}`),
				http.StatusBadRequest, "Format error in JSON body", false)
			expectError(t, "timeout=0", queryAudit(t, f.client, f.keys.api, "?timeout=0", `{}`), http.StatusUnprocessableEntity,
				"Validation error in query parameters: [timeout: value 0 invalid, must be 1 or larger]", true)
		}},
		{name: "read_only_key_403_and_logged", spec: "§11b (manage access; read-only key 403), §3.5", run: func(t *testing.T, f *fixture) {
			id := newName(t, "roaudit")
			r := f.client.do(t, "POST", "/audit/logs", `{}`, apiKey(f.keys.readOnly), traced(id))
			expectError(t, "read-only key on POST /audit/logs", r, http.StatusForbidden, msgGlobalManage, true)
			expectEntry(t, "the refusal", one(t, "the refusal", waitAudit(t, f.client, f.keys.api, byTracing(id), 1)), map[string]string{
				"method": "get_audit_logs", "api": "/audit/logs", "auth_type": "ApiKey", "tracing_id": id, "result": "denied",
				"error": msgGlobalManage})
		}},
	}}
}

// seededLine is an audit entry as a node would have written it, marked with subject "seeded".
func seededLine(ts, id string) string {
	return fmt.Sprintf(`{"timestamp":%q,"method":"list_collections","auth_type":"ApiKey","subject":"seeded",`+
		`"tracing_id":%q,"result":"ok","not_a_field":1}`+"\n", ts, id)
}

// auditFilesGroup: audit logging switched off, configured from a file, and files a node finds at start (qdrant.md
// §11b, §2).
func auditFilesGroup() group {
	return group{name: "audit_files", cases: []testCase{
		{name: "no_audit_section_400_not_configured", spec: "§11b (no audit config: 400 Bad request)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{Env: map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": k}})
			expectError(t, "POST /audit/logs without an audit section", queryAudit(t, c, k, "", `{}`), http.StatusBadRequest,
				"Bad request: Audit logging is not configured", true)
		}},
		{name: "audit_disabled_400_not_enabled", spec: "§11b (audit disabled: 400 \"Bad request: Audit logging is not enabled\")", run: func(t *testing.T, f *fixture) {
			k, ro := newKey(t), newKey(t)
			_, c := startClient(t, f, Setup{Env: map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": k,
				"QDRANT__SERVICE__READ_ONLY_API_KEY": ro, "QDRANT__AUDIT__ENABLED": "false"}})
			expectError(t, "POST /audit/logs with audit disabled", queryAudit(t, c, k, "", `{}`), http.StatusBadRequest,
				"Bad request: Audit logging is not enabled", true)
			expectError(t, "read-only key, audit disabled (access first)", queryAudit(t, c, ro, "", `{}`), http.StatusForbidden,
				msgGlobalManage, true)
		}},
		{name: "audit_from_config_file_log_api_off", spec: "§11b (audit.* from a config layer; log_api false: no api on access checks)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{"config/local.yaml": apiKeyFile(k) +
					"audit:\n  enabled: true\n  dir: ./audit-trail\n  rotation: hourly\n  log_api: false\n"},
			})
			id := newName(t, "file")
			c.do(t, "GET", "/collections", "", apiKey(k), traced(id+"-ok"))
			c.do(t, "GET", "/collections", "", apiKey(newKey(t)), traced(id+"-bad"))
			expectEntry(t, "access check", one(t, "ok", waitAudit(t, c, k, byTracing(id+"-ok"), 1)), map[string]string{
				"method": "list_collections", "auth_type": "ApiKey", "tracing_id": id + "-ok", "result": "ok"})
			expectEntry(t, "refusal keeps its api", one(t, "bad", waitAudit(t, c, k, byTracing(id+"-bad"), 1)), map[string]string{
				"api": "/collections", "auth_type": "None", "tracing_id": id + "-bad", "result": "denied",
				"error": "Unauthorized: " + msgInvalidKey})
		}},
		{name: "trust_forwarded_headers_takes_x_forwarded_for", spec: "§11b (remote from X-Forwarded-For only with trust_forwarded_headers)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{Env: map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": k,
				"QDRANT__AUDIT__ENABLED": "true", "QDRANT__AUDIT__TRUST_FORWARDED_HEADERS": "true"}})
			id := newName(t, "fwd")
			c.do(t, "GET", "/collections", "", apiKey(k), traced(id), header{"X-Forwarded-For", "203.0.113.7"})
			e := one(t, "forwarded", waitAudit(t, c, k, byTracing(id), 1))
			if e.get("remote") != "203.0.113.7" {
				t.Errorf("remote %q, want the X-Forwarded-For address 203.0.113.7", e.get("remote"))
			}
		}},
		{name: "files_found_at_start_read_by_name", spec: "§11b (audit.YYYY-MM-DD.log / audit.YYYY-MM-DD-HH.log, one JSON object per line)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": k, "QDRANT__AUDIT__ENABLED": "true"},
				Files: map[string]string{
					"storage/audit/audit.2024-06-15.log": seededLine("2024-06-15T10:00:00Z", "a") + "not json\n" +
						seededLine("2024-06-15T11:00:00.5Z", "b"),
					"storage/audit/audit.2024-06-16-09.log": seededLine("2024-06-16T09:30:00+02:00", "c"),
					// In the time range by its content, outside it by its name: not read.
					"storage/audit/audit.2024-06-17.log": seededLine("2024-06-15T12:00:00Z", "misplaced"),
				},
			})
			es := auditEntries(t, c, k, `{"time_from":"2024-06-15T00:00:00Z","time_to":"2024-06-17T00:00:00Z","filters":{"subject":"seeded"}}`)
			var ids []string
			for _, e := range es {
				ids = append(ids, e.get("tracing_id"))
			}
			if !slices.Equal(ids, []string{"c", "b", "a"}) {
				t.Fatalf("seeded entries %v, want [c b a]: newest first, the misplaced file left out by its name", ids)
			}
			expectEntry(t, "seeded entry b", es[1], map[string]string{"method": "list_collections", "auth_type": "ApiKey",
				"subject": "seeded", "tracing_id": "b", "result": "ok", "remote": ""})
			if ts := es[1].get("timestamp"); ts != "2024-06-15T11:00:00.500Z" {
				t.Errorf("timestamp %q, want 2024-06-15T11:00:00.500Z (chrono's RFC 3339 in UTC)", ts)
			}
			if ts := es[0].get("timestamp"); ts != "2024-06-16T07:30:00Z" {
				t.Errorf("timestamp %q, want 2024-06-16T07:30:00Z (converted to UTC)", ts)
			}
			if slices.Contains(es[1].present, "not_a_field") {
				t.Errorf("unknown field of the file passed through: %v", es[1].present)
			}
		}},
		{name: "max_log_files_prunes_at_start", spec: "§11b (max_log_files; tracing-appender prunes when it opens a file)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": k, "QDRANT__AUDIT__ENABLED": "true",
					"QDRANT__AUDIT__MAX_LOG_FILES": "1"},
				Files: map[string]string{
					"storage/audit/audit.2024-06-15.log": seededLine("2024-06-15T10:00:00Z", "a"),
					"storage/audit/audit.2024-06-16.log": seededLine("2024-06-16T10:00:00Z", "b"),
				},
			})
			if es := auditEntries(t, c, k, `{"filters":{"subject":"seeded"}}`); len(es) != 0 {
				t.Errorf("max_log_files 1: %d entries of older files, want none (all pruned at start)", len(es))
			}
		}},
	}}
}
