package standin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/qdrantrotator/rotator/testbed/syncbuf"
)

// testClock is the stand-in's injectable clock for tests: every reading advances it by step, so entries get
// distinct, known timestamps without the wall clock.
type testClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newTestClock(start string) *testClock {
	t, err := time.Parse(time.RFC3339Nano, start)
	if err != nil {
		panic(err)
	}
	return &testClock{t: t, step: time.Millisecond}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *testClock) set(s string) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// auditServer is testServer with the audit log opened as Run opens it, on clock.
func auditServer(t *testing.T, clock *testClock, env ...string) (*server, string) {
	t.Helper()
	s, dir := testServer(t, env...)
	s.now = clock.now
	if a := s.cfg.Audit; a != nil && a.Enabled {
		al, err := openAuditLog(*a, resolvePath(dir, a.Dir), clock.now, newLogger(io.Discard, 0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(al.close)
		s.audit = al
	}
	return s, dir
}

// auditLines returns the entries written under dir/storage/audit, file by file in name order.
func auditLines(t *testing.T, dir string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "storage", "audit", "audit*.log"))
	slices.Sort(files)
	var out []map[string]any
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			out = append(out, m)
		}
	}
	return out
}

func TestAuditConfigDecode(t *testing.T) {
	cfg, _, err := loadConfig(t, t.TempDir(), "")
	if err != nil || cfg.Audit != nil {
		t.Fatalf("default: audit %+v, err %v; want no audit section", cfg.Audit, err)
	}
	cfg, _, err = loadConfig(t, t.TempDir(), "", "QDRANT__AUDIT__ENABLED=true")
	want := AuditConfig{Enabled: true, Dir: "./storage/audit", MaxLogFiles: 7, LogAPI: true}
	if err != nil || cfg.Audit == nil || *cfg.Audit != want {
		t.Fatalf("env enabled: %+v, %v; want %+v", cfg.Audit, err, want)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"config/local.yaml": "audit:\n  enabled: true\n  dir: /var/audit\n" +
		"  rotation: hourly\n  max_log_files: 2\n  trust_forwarded_headers: true\n  log_api: false\n"})
	cfg, _, err = loadConfig(t, dir, "", "QDRANT__AUDIT__MAX_LOG_FILES=3", "qdrant__audit__log_api=yes")
	want = AuditConfig{Enabled: true, Dir: "/var/audit", Hourly: true, MaxLogFiles: 3, TrustForwardedHeaders: true, LogAPI: true}
	if err != nil || cfg.Audit == nil || *cfg.Audit != want {
		t.Fatalf("file then env: %+v, %v; want %+v", cfg.Audit, err, want)
	}
	cfg, _, err = loadConfig(t, t.TempDir(), "", "QDRANT__AUDIT__DIR=/x")
	if err != nil || cfg.Audit == nil || cfg.Audit.Enabled {
		t.Fatalf("a section without enabled is present and disabled: %+v, %v", cfg.Audit, err)
	}
	for _, tc := range []struct{ env, key string }{
		{"QDRANT__AUDIT__ROTATION=Daily", "audit.rotation"},
		{"QDRANT__AUDIT__ROTATION=weekly", "audit.rotation"},
		{"QDRANT__AUDIT__MAX_LOG_FILES=-1", "audit.max_log_files"},
		{"QDRANT__AUDIT__ENABLED=maybe", "audit.enabled"},
		{"QDRANT__AUDIT=on", "audit"},
	} {
		if _, _, err := loadConfig(t, t.TempDir(), "", tc.env); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v, want one naming %s", tc.env, err, tc.key)
		}
	}
	dir = t.TempDir()
	writeFiles(t, dir, map[string]string{"config/local.yaml": "audit: ~\n"})
	if cfg, _, err = loadConfig(t, dir, ""); err != nil || cfg.Audit != nil {
		t.Fatalf("audit: null: %+v, %v", cfg.Audit, err)
	}
}

func TestFormatAuditTime(t *testing.T) {
	for in, want := range map[string]string{
		"2024-06-15T10:30:00Z":                "2024-06-15T10:30:00Z",
		"2024-06-15T10:30:00.5Z":              "2024-06-15T10:30:00.500Z",
		"2024-06-15T10:30:00.000120Z":         "2024-06-15T10:30:00.000120Z",
		"2024-06-15T10:30:00.123456789Z":      "2024-06-15T10:30:00.123456789Z",
		"2024-06-15T12:30:00.1+02:00":         "2024-06-15T10:30:00.100Z",
		"2024-06-15 10:30:00z":                "2024-06-15T10:30:00Z",
		"2024-06-15t10:30:00.000000001+00:00": "2024-06-15T10:30:00.000000001Z",
	} {
		tm, err := parseAuditTime(in)
		if err != nil || formatAuditTime(tm) != want {
			t.Errorf("%s: %s, %v; want %s", in, formatAuditTime(tm), err, want)
		}
	}
	for _, bad := range []string{"", "2024-06-15", "yesterday", "2024-06-15T10:30:00"} {
		if _, err := parseAuditTime(bad); err == nil {
			t.Errorf("%q parsed, want an error", bad)
		}
	}
}

func TestAuditFilesRotate(t *testing.T) {
	for _, tc := range []struct {
		hourly      bool
		start, next string
		names       []string
	}{
		{false, "2024-06-15T23:59:59.5Z", "2024-06-16T00:00:00Z", []string{"audit.2024-06-15.log", "audit.2024-06-16.log"}},
		{true, "2024-06-15T22:59:59.5Z", "2024-06-15T23:00:00Z", []string{"audit.2024-06-15-22.log", "audit.2024-06-15-23.log"}},
	} {
		dir := t.TempDir()
		clock := newTestClock(tc.start)
		a, err := openAuditLog(AuditConfig{Enabled: true, Hourly: tc.hourly, MaxLogFiles: 7, LogAPI: true}, dir, clock.now,
			newLogger(io.Discard, 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, tc.names[0])); err != nil {
			t.Fatalf("hourly=%t: the current file is created at start: %v", tc.hourly, err)
		}
		a.record(auditEvent{AuthType: authTypeNone, Result: auditOK})
		clock.set(tc.next)
		a.record(auditEvent{AuthType: authTypeNone, Result: auditOK})
		a.close()
		a.record(auditEvent{AuthType: authTypeNone, Result: auditOK}) // dropped after close
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, tc.names) {
			t.Fatalf("hourly=%t: files %v, want %v", tc.hourly, names, tc.names)
		}
		for _, n := range names {
			data, _ := os.ReadFile(filepath.Join(dir, n))
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			f := parseAuditFile(n)
			for _, l := range lines {
				ev, ok := parseAuditLine([]byte(l))
				if !ok || ev.Timestamp.Before(f.start) || !ev.Timestamp.Before(f.start.Add(f.span)) {
					t.Errorf("hourly=%t: %s holds %q, outside its period", tc.hourly, n, l)
				}
			}
			if len(lines) != 1 {
				t.Errorf("hourly=%t: %s has %d lines, want 1", tc.hourly, n, len(lines))
			}
		}
	}
}

func TestAuditMaxLogFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"audit.2020-01-01.log": "{}\n", "audit.log": "", "other.log": "",
		"audit-dir.log/x": ""})
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range []string{"audit.2020-01-01.log", "audit.log"} {
		if err := os.Chtimes(filepath.Join(dir, n), old, old); err != nil {
			t.Fatal(err)
		}
	}
	clock := newTestClock("2024-06-15T10:00:00Z")
	// max_log_files 0 counts as 1: at start every older audit file goes, other files and directories stay.
	a, err := openAuditLog(AuditConfig{Enabled: true, Hourly: true, MaxLogFiles: 0}, dir, clock.now, newLogger(io.Discard, 0))
	if err != nil {
		t.Fatal(err)
	}
	a.close()
	if got := dirNames(t, dir); !slices.Equal(got, []string{"audit-dir.log", "audit.2024-06-15-10.log", "other.log"}) {
		t.Fatalf("after start with max_log_files 0: %v", got)
	}

	dir = t.TempDir()
	a, err = openAuditLog(AuditConfig{Enabled: true, Hourly: true, MaxLogFiles: 3}, dir, clock.now, newLogger(io.Discard, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	for h := 10; h < 16; h++ {
		clock.set(fmt.Sprintf("2024-06-15T%02d:30:00Z", h))
		a.record(auditEvent{AuthType: authTypeNone, Result: auditOK})
		// Modification times order the candidates; make them follow the clock, not the wall clock's resolution.
		mt := time.Date(2024, 6, 15, h, 30, 0, 0, time.UTC)
		_ = os.Chtimes(filepath.Join(dir, fmt.Sprintf("audit.2024-06-15-%02d.log", h)), mt, mt)
	}
	want := []string{"audit.2024-06-15-13.log", "audit.2024-06-15-14.log", "audit.2024-06-15-15.log"}
	if got := dirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("hourly with max_log_files 3 after 6 hours: %v, want %v", got, want)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestAuditEntriesOfRequests(t *testing.T) {
	clock := newTestClock("2024-06-15T10:00:00Z")
	s, dir := auditServer(t, clock, "QDRANT__SERVICE__API_KEY="+testKey, "QDRANT__SERVICE__READ_ONLY_API_KEY=ro",
		"QDRANT__SERVICE__JWT_RBAC=true", "QDRANT__AUDIT__ENABLED=true")
	alice := sign(t, testKey, jwt.MapClaims{"access": "r", "subject": "alice", "sub": "inference-user"})
	expired := sign(t, testKey, jwt.MapClaims{"exp": 1000})
	long := strings.Repeat("x", 300)
	for _, c := range []struct{ method, path, key, note string }{
		{"GET", "/collections", "", "no credential"},
		{"GET", "/collections/", "", "the path is normalised"},
		{"GET", "/nope", "", "unknown route without key: refused first"},
		{"GET", "/nope", testKey, "unknown route with a key: 404, nothing logged"},
		{"GET", "/healthz", "", "exempt paths: nothing logged"},
		{"GET", "/readyz", testKey, ""},
		{"GET", "/livez", "", ""},
		{"GET", "/", "", ""},
		{"GET", "/metrics", testKey, "not audited"},
		{"GET", "/telemetry", testKey, "not audited"},
		{"GET", "/collections", "wrong", "wrong key"},
		{"GET", "/collections", expired, "expired JWT: 403 from the middleware"},
		{"GET", "/collections", testKey, "list_collections ok"},
		{"PUT", "/collections/c", testKey, "create_collection ok, no collection field"},
		{"PUT", "/collections/d", "ro", "create_collection denied"},
		{"GET", "/collections/c", alice, "get_collection ok with the JWT's subject"},
		{"GET", "/collections/c/exists", "ro", "collection_exists"},
		{"PUT", "/collections/c/points", "ro", "upsert_points denied"},
		{"POST", "/collections/c/points/count", "", "no credential"},
	} {
		var kv []string
		if c.key != "" {
			kv = []string{"api-key", c.key}
		}
		body := ""
		switch {
		case c.method == "PUT" && strings.HasSuffix(c.path, "/points"):
			body = `{"points":[{"id":1,"vector":[1,2]}]}`
		case c.method == "PUT":
			body = `{"vectors":{"size":2,"distance":"Dot"}}`
		case c.method == "POST":
			body = `{}`
		}
		kv = append(kv, "x-request-id", c.method+" "+c.path, "traceparent", "ignored")
		do(t, s, c.method, c.path, body, kv...)
	}
	do(t, s, "GET", "/collections", "", "api-key", testKey, "x-tracing-id", long, "traceparent", "tp")
	do(t, s, "GET", "/collections", "", "api-key", testKey, "traceparent", "00-abc-01")

	got := auditLines(t, dir)
	type row struct{ tracing, method, api, authType, subject, collection, result, errText string }
	str := func(m map[string]any, k string) string {
		v, _ := m[k].(string)
		return v
	}
	var rows []row
	for _, m := range got {
		rows = append(rows, row{str(m, "tracing_id"), str(m, "method"), str(m, "api"), str(m, "auth_type"),
			str(m, "subject"), str(m, "collection"), str(m, "result"), str(m, "error")})
		if str(m, "remote") != "192.0.2.1" {
			t.Errorf("entry %v: remote %q, want the client IP without port", m, m["remote"])
		}
	}
	want := []row{
		{"GET /collections", "", "/collections", "None", "", "", "denied", "Unauthorized: " + msgNoCredential},
		{"GET /collections/", "", "/collections", "None", "", "", "denied", "Unauthorized: " + msgNoCredential},
		{"GET /nope", "", "/nope", "None", "", "", "denied", "Unauthorized: " + msgNoCredential},
		{"GET /collections", "", "/collections", "None", "", "", "denied", "Unauthorized: " + msgInvalidKey},
		{"GET /collections", "", "/collections", "None", "", "", "denied", "Forbidden: ExpiredSignature"},
		{"GET /collections", "list_collections", "/collections", "ApiKey", "", "", "ok", ""},
		{"PUT /collections/c", "create_collection", "/collections/c", "ApiKey", "", "", "ok", ""},
		{"PUT /collections/d", "create_collection", "/collections/d", "ApiKey", "", "", "denied", msgGlobalManageTest},
		{"GET /collections/c", "get_collection", "/collections/c", "Jwt", "alice", "c", "ok", ""},
		{"GET /collections/c/exists", "collection_exists", "/collections/c/exists", "ApiKey", "", "c", "ok", ""},
		{"PUT /collections/c/points", "upsert_points", "/collections/c/points", "ApiKey", "", "c", "denied", msgGlobalManageTest},
		{"POST /collections/c/points/count", "", "/collections/c/points/count", "None", "", "", "denied", "Unauthorized: " + msgNoCredential},
		{long[:256], "list_collections", "/collections", "ApiKey", "", "", "ok", ""},
		{"00-abc-01", "list_collections", "/collections", "ApiKey", "", "", "ok", ""},
	}
	if !slices.Equal(rows, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", fmtRows(rows), fmtRows(want))
	}
	// Absent fields are omitted, in Qdrant's field order; timestamps come from the clock.
	data, _ := os.ReadFile(filepath.Join(dir, "storage", "audit", "audit.2024-06-15.log"))
	first := strings.SplitN(string(data), "\n", 2)[0]
	if !strings.HasPrefix(first, `{"timestamp":"2024-06-15T10:00:00.`) || !strings.HasSuffix(first,
		`Z","api":"/collections","auth_type":"None","remote":"192.0.2.1","tracing_id":"GET /collections",`+
			`"result":"denied","error":"Unauthorized: Must provide an API key or an Authorization bearer token"}`) {
		t.Errorf("first line %s", first)
	}
	if strings.Contains(string(data), testKey) {
		t.Error("a key is in the audit log")
	}
}

const msgGlobalManageTest = "Forbidden: Global manage access is required"

func fmtRows[T any](rows []T) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %+v\n", r)
	}
	return b.String()
}

func TestAuditRemoteAPIAndOpenNode(t *testing.T) {
	clock := newTestClock("2024-06-15T10:00:00Z")
	s, dir := auditServer(t, clock, "QDRANT__SERVICE__API_KEY="+testKey, "QDRANT__AUDIT__ENABLED=true",
		"QDRANT__AUDIT__TRUST_FORWARDED_HEADERS=true", "QDRANT__AUDIT__LOG_API=false")
	do(t, s, "GET", "/collections", "", "api-key", testKey, "X-Forwarded-For", "203.0.113.9, 10.0.0.1")
	do(t, s, "GET", "/collections", "", "api-key", "wrong", "Forwarded", "for=198.51.100.1", "X-Forwarded-For", "203.0.113.9")
	got := auditLines(t, dir)
	if len(got) != 2 || got[0]["remote"] != "203.0.113.9, 10.0.0.1" || got[0]["api"] != nil ||
		got[1]["remote"] != "for=198.51.100.1" || got[1]["api"] != "/collections" {
		t.Errorf("trusted forwarded headers, log_api false: %v", got)
	}

	s, dir = auditServer(t, clock, "QDRANT__SERVICE__API_KEY="+testKey, "QDRANT__AUDIT__ENABLED=true")
	do(t, s, "GET", "/collections", "", "api-key", testKey, "X-Forwarded-For", "203.0.113.9")
	if got := auditLines(t, dir); len(got) != 1 || got[0]["remote"] != "192.0.2.1" {
		t.Errorf("untrusted X-Forwarded-For: %v", got)
	}

	// No key configured: full access, auth_type None, no api (Qdrant's take_request_auth).
	s, dir = auditServer(t, clock, "QDRANT__AUDIT__ENABLED=true")
	do(t, s, "PUT", "/collections/c", `{"vectors":{"size":2,"distance":"Dot"}}`, "api-key", "anything")
	if got := auditLines(t, dir); len(got) != 1 || got[0]["auth_type"] != "None" || got[0]["api"] != nil ||
		got[0]["method"] != "create_collection" || got[0]["result"] != "ok" {
		t.Errorf("open node: %v", got)
	}

	// Audit off: nothing is written anywhere.
	s, dir = auditServer(t, clock, "QDRANT__SERVICE__API_KEY="+testKey, "QDRANT__AUDIT__ENABLED=false")
	do(t, s, "GET", "/collections", "", "api-key", "wrong")
	if _, err := os.Stat(filepath.Join(dir, "storage", "audit")); err == nil {
		t.Error("audit disabled: the audit folder exists")
	}
}

// auditQueryResult posts to /audit/logs and returns the status, the entries and the error text.
func auditQueryResult(t *testing.T, s *server, key, query, body string) (int, []map[string]any, string) {
	t.Helper()
	r := do(t, s, "POST", "/audit/logs"+query, body, "api-key", key)
	if r.status != 200 {
		return r.status, nil, errorText(t, r.body)
	}
	var env struct {
		Result struct {
			Entries []map[string]any `json:"entries"`
		} `json:"result"`
		Status string   `json:"status"`
		Time   *float64 `json:"time"`
	}
	if err := json.Unmarshal([]byte(r.body), &env); err != nil || env.Status != "ok" || env.Time == nil ||
		env.Result.Entries == nil {
		t.Fatalf("not an ok envelope with entries: %s", r.body)
	}
	return r.status, env.Result.Entries, ""
}

func TestAuditLogsEndpoint(t *testing.T) {
	clock := newTestClock("2024-06-15T10:00:00Z")
	s, _ := auditServer(t, clock, "QDRANT__SERVICE__API_KEY="+testKey, "QDRANT__SERVICE__READ_ONLY_API_KEY=ro",
		"QDRANT__AUDIT__ENABLED=true")
	for i := 1; i <= 5; i++ {
		do(t, s, "GET", "/collections", "", "api-key", testKey, "x-request-id", fmt.Sprint("ok-", i))
	}
	do(t, s, "GET", "/collections", "", "api-key", "wrong", "x-request-id", "bad")
	tracing := func(es []map[string]any) []string {
		var out []string
		for _, e := range es {
			v, _ := e["tracing_id"].(string)
			out = append(out, v)
		}
		return out
	}
	// Every query below filters on the requests' path, leaving out the endpoint's own get_audit_logs entries.
	_, all, _ := auditQueryResult(t, s, testKey, "", `{"filters":{"api":"/collections"}}`)
	if got := tracing(all); !slices.Equal(got, []string{"bad", "ok-5", "ok-4", "ok-3", "ok-2", "ok-1"}) {
		t.Fatalf("all entries, newest first: %v", got)
	}
	ts := map[string]string{}
	for _, e := range all {
		ts[e["tracing_id"].(string)] = e["timestamp"].(string)
	}
	for _, tc := range []struct {
		name, query, body string
		want              []string
	}{
		{"limit", "?timeout=5", `{"limit":2,"filters":{"api":"/collections"}}`, []string{"bad", "ok-5"}},
		{"filter result", "", `{"filters":{"result":"ok","api":"/collections"},"limit":3}`, []string{"ok-5", "ok-4", "ok-3"}},
		{"two filters", "", `{"filters":{"auth_type":"None","api":"/collections"}}`, []string{"bad"}},
		{"filter no match", "", `{"filters":{"method":"upsert_points"}}`, nil},
		{"unknown filter field matches nothing", "", `{"filters":{"nope":"x"}}`, nil},
		{"timestamp is not a filter", "", `{"filters":{"timestamp":"` + ts["ok-1"] + `"}}`, nil},
		{"time range: from inclusive, to exclusive", "", `{"time_from":"` + ts["ok-3"] + `","time_to":"` + ts["ok-5"] +
			`","filters":{"api":"/collections"}}`, []string{"ok-4", "ok-3"}},
		{"time_to alone", "", `{"time_to":"` + ts["ok-4"] + `","filters":{"api":"/collections"}}`,
			[]string{"ok-3", "ok-2", "ok-1"}},
		{"unknown body fields ignored", "", `{"what":1,"limit":null,"time_from":null,"filters":{"api":"/collections"}}`,
			[]string{"bad", "ok-5", "ok-4", "ok-3", "ok-2", "ok-1"}},
	} {
		status, entries, msg := auditQueryResult(t, s, testKey, tc.query, tc.body)
		if status != 200 {
			t.Errorf("%s: %d %s", tc.name, status, msg)
			continue
		}
		if got := tracing(entries); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name, key, query, body string
		status                 int
		msg                    string
	}{
		{"limit 0", testKey, "", `{"limit":0}`, 422, "Validation error in JSON body: [limit: value 0 invalid, must be from 1 to 10000]"},
		{"limit 10001", testKey, "", `{"limit":10001}`, 422, "Validation error in JSON body: [limit: value 10001 invalid, must be from 1 to 10000]"},
		{"negative limit", testKey, "", `{"limit":-1}`, 400, "Format error in JSON body: invalid value: integer `-1`, expected usize"},
		{"string limit", testKey, "", `{"limit":"5"}`, 400, "Format error in JSON body: invalid type: string \"5\", expected usize"},
		{"bad time", testKey, "", `{"time_from":"yesterday"}`, 400, "Format error in JSON body: input contains invalid characters"},
		{"filter value not a string", testKey, "", `{"filters":{"result":1}}`, 400, "Format error in JSON body: invalid type: integer `1`, expected a string"},
		{"filters null", testKey, "", `{"filters":null}`, 400, "Format error in JSON body: invalid type: unit value, expected a map"},
		{"timeout 0", testKey, "?timeout=0", `{}`, 422, "Validation error in query parameters: [timeout: value 0 invalid, must be 1 or larger]"},
		{"timeout text", testKey, "?timeout=soon", `{}`, 400, "Deserialize error in query parameters: invalid digit found in string"},
		{"read-only key", "ro", "", `{}`, 403, msgGlobalManageTest},
		{"read-only key, bad body first", "ro", "", `{"limit":0}`, 422, "Validation error in JSON body: [limit: value 0 invalid, must be from 1 to 10000]"},
	} {
		status, _, msg := auditQueryResult(t, s, tc.key, tc.query, tc.body)
		if status != tc.status || msg != tc.msg {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, msg, tc.status, tc.msg)
		}
	}
	_, entries, _ := auditQueryResult(t, s, testKey, "", `{"filters":{"method":"get_audit_logs"},"limit":2}`)
	if len(entries) != 2 || entries[0]["result"] != "ok" || entries[1]["result"] != "denied" ||
		entries[1]["error"] != msgGlobalManageTest {
		t.Errorf("the endpoint audits itself (the read-only refusal, then this query's ok): %v", entries)
	}

	s, _ = auditServer(t, clock, "QDRANT__SERVICE__API_KEY="+testKey)
	if status, _, msg := auditQueryResult(t, s, testKey, "", `{}`); status != 400 ||
		msg != "Bad request: Audit logging is not configured" {
		t.Errorf("no audit section: %d %q", status, msg)
	}
	s, _ = auditServer(t, clock, "QDRANT__SERVICE__API_KEY="+testKey, "QDRANT__AUDIT__ENABLED=false")
	if status, _, msg := auditQueryResult(t, s, testKey, "", `{}`); status != 400 ||
		msg != "Bad request: Audit logging is not enabled" {
		t.Errorf("audit disabled: %d %q", status, msg)
	}
}

func TestReadLocalAuditLogs(t *testing.T) {
	dir := t.TempDir()
	line := func(ts, id string) string {
		return fmt.Sprintf(`{"timestamp":%q,"auth_type":"ApiKey","result":"ok","tracing_id":%q,"extra":1}`+"\n", ts, id)
	}
	writeFiles(t, dir, map[string]string{
		// A daily file: a torn line, a line of another shape and an entry past time_to in the middle.
		"audit.2024-06-14.log": line("2024-06-14T08:00:00Z", "d1") + "{\"timestamp\":\n" +
			`{"timestamp":"2024-06-14T09:00:00Z","auth_type":"Root","result":"ok"}` + "\n\n" +
			line("2024-06-14T10:00:00Z", "d2") + line("2024-06-14T23:00:00Z", "d3"),
		// Hourly files; the name, not the content, decides whether a file is read for a time range.
		"audit.2024-06-15-09.log": line("2024-06-15T09:10:00Z", "h9"),
		"audit.2024-06-15-10.log": line("2024-06-15T10:10:00Z", "h10a") + line("2024-06-15T10:20:00Z", "h10b"),
		"audit.2024-06-15-11.log": line("2024-06-14T12:00:00Z", "misplaced"),
		// Names without a date are read first, whatever the range.
		"audit.log":     line("2020-01-01T00:00:00Z", "current"),
		"not-audit.log": line("2024-06-15T10:15:00Z", "ignored"),
	})
	ids := func(q auditQuery) []string {
		if q.limit == 0 {
			q.limit = auditDefaultLimit
		}
		es, err := readLocalAuditLogs(dir, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, *e.TracingID)
		}
		return out
	}
	tp := func(s string) *time.Time {
		v, _ := time.Parse(time.RFC3339, s)
		return &v
	}
	for _, tc := range []struct {
		name string
		q    auditQuery
		want []string
	}{
		{"all", auditQuery{}, []string{"current", "misplaced", "h10b", "h10a", "h9", "d3", "d2", "d1"}},
		{"limit spans files", auditQuery{limit: 4}, []string{"current", "misplaced", "h10b", "h10a"}},
		{"limit keeps a file's newest", auditQuery{limit: 3, from: tp("2024-06-15T10:00:00Z")}, []string{"h10b", "h10a"}},
		{"time_to stops a file", auditQuery{to: tp("2024-06-14T09:30:00Z")}, []string{"current", "d1"}},
		{"file names bound the range (misplaced is in range, its file is not)",
			auditQuery{from: tp("2024-06-14T11:00:00Z"), to: tp("2024-06-14T13:00:00Z")}, nil},
		{"hourly file by its hour", auditQuery{from: tp("2024-06-15T10:00:00Z"), to: tp("2024-06-15T10:15:00Z")},
			[]string{"h10a"}},
		{"filter", auditQuery{filters: map[string]string{"tracing_id": "d2", "auth_type": "ApiKey"}}, []string{"d2"}},
	} {
		if got := ids(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if es, err := readLocalAuditLogs(filepath.Join(dir, "missing"), auditQuery{limit: 10}); err != nil || len(es) != 0 {
		t.Errorf("missing folder: %v %v, want no entries", es, err)
	}
	writeFiles(t, dir, map[string]string{"audit.2024-06-16.log": "\xff\n"})
	if _, err := readLocalAuditLogs(dir, auditQuery{limit: 10}); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8: %v, want an error", err)
	}
}

func TestParseAuditFileNames(t *testing.T) {
	for name, want := range map[string]string{
		"audit.2024-06-15.log":    "2024-06-15T00:00:00Z/24h0m0s",
		"audit.2024-06-15-09.log": "2024-06-15T09:00:00Z/1h0m0s",
		"audit.2024-6-5-9.log":    "2024-06-05T09:00:00Z/1h0m0s",
		"audit.2024-06-15-24.log": "",
		"audit.2024-02-30.log":    "",
		"audit.log":               "",
		"audit.x.log":             "",
	} {
		f := parseAuditFile(name)
		got := ""
		if f.ok {
			got = f.start.Format(time.RFC3339) + "/" + f.span.String()
		}
		if got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

func TestMergeAuditSources(t *testing.T) {
	ev := func(sec int, id string) auditEvent {
		return auditEvent{Timestamp: auditTime{time.Date(2024, 1, 1, 0, 0, sec, 0, time.UTC)}, TracingID: &id}
	}
	got := mergeAuditSources([][]auditEvent{
		{ev(9, "a9"), ev(5, "a5"), ev(1, "a1")},
		{ev(8, "b8"), ev(5, "b5")},
		nil,
		{ev(7, "c7")},
	}, 6)
	var ids []string
	for _, e := range got {
		ids = append(ids, *e.TracingID)
	}
	if want := []string{"a9", "b8", "c7", "a5", "b5", "a1"}; !slices.Equal(ids, want) {
		t.Errorf("merge: %v, want %v", ids, want)
	}
	if got := mergeAuditSources(nil, 5); got == nil || len(got) != 0 {
		t.Errorf("nothing to merge: %v, want an empty list", got)
	}
}

// TestRunAuditLog: Run opens the audit log at start (its file exists before any request), takes its clock from
// Options.Now, logs where it writes, and records the client's IP of a real connection; a folder it cannot create
// makes the start fail like Qdrant's panic.
func TestRunAuditLog(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock("2024-06-15T10:20:00Z")
	var out, errOut syncbuf.Buffer
	ready := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, Options{Dir: dir, Stdout: &out, Stderr: &errOut, Now: clock.now,
			Ready: func(a net.Addr) { ready <- a },
			Env: []string{"QDRANT__SERVICE__HOST=127.0.0.1", "QDRANT__SERVICE__HTTP_PORT=0",
				"QDRANT__SERVICE__API_KEY=" + testKey, "QDRANT__AUDIT__ENABLED=true", "QDRANT__AUDIT__ROTATION=hourly"}})
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("exited %d: %s %s", code, out.String(), errOut.String())
	}
	file := filepath.Join(dir, "storage", "audit", "audit.2024-06-15-10.log")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("audit file not created at start: %v", err)
	}
	req, _ := http.NewRequest("GET", "http://"+addr.String()+"/collections", nil)
	req.Header.Set("api-key", "wrong")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit code %d", code)
	}
	data, _ := os.ReadFile(file)
	if !strings.Contains(string(data), `"remote":"127.0.0.1"`) || !strings.Contains(string(data), `"error":"Unauthorized: Invalid API key or JWT"`) {
		t.Errorf("audit file: %s", data)
	}
	if !strings.Contains(out.String(), "Audit logging enabled, writing to ./storage/audit") {
		t.Errorf("logs lack the audit line:\n%s", out.String())
	}

	writeFiles(t, dir, map[string]string{"blocker": "a file, not a folder"})
	var panicOut syncbuf.Buffer
	code := Run(context.Background(), Options{Dir: dir, Stdout: io.Discard, Stderr: &panicOut,
		Env: []string{"QDRANT__AUDIT__ENABLED=true", "QDRANT__AUDIT__DIR=blocker/audit"}})
	if code != ExitPanic || !strings.Contains(panicOut.String(), "Audit logger must be initialized if audit logging is enabled") {
		t.Errorf("audit folder that cannot be created: code %d, stderr %q", code, panicOut.String())
	}
}

// TestClusterAuditLogsMerged: POST /audit/logs on one peer returns the entries of every peer, newest first, read
// over the internal API with the peer's key (enforce_internal_auth on); with a peer down the request fails.
func TestClusterAuditLogsMerged(t *testing.T) {
	c := startTestCluster(t, 2, true, peerKeys{api: clusterK1}, "QDRANT__AUDIT__ENABLED=true")
	c.agreeOnLeader(c.peers, constKey(clusterK1), 2)
	get := func(p *peerProc, key, id string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/collections", p.rest), nil)
		req.Header.Set("api-key", key)
		req.Header.Set("x-request-id", id)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	get(c.peers[0], clusterK1, "on-peer-0")
	get(c.peers[1], "wrong", "on-peer-1")
	query := `{"filters":{"api":"/collections"}}`
	var res struct {
		Entries []auditEvent `json:"entries"`
	}
	c.result(c.peers[0], clusterK1, "POST", "/audit/logs", query, &res)
	var ids []string
	for i, e := range res.Entries {
		ids = append(ids, *e.TracingID)
		if i > 0 && e.Timestamp.After(res.Entries[i-1].Timestamp.Time) {
			t.Errorf("entries not newest first: %v", res.Entries)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"on-peer-0", "on-peer-1"}) {
		t.Fatalf("merged entries %v, want one from each peer", ids)
	}
	c.peers[1].stop(t)
	status, body := c.call(c.peers[0], clusterK1, "POST", "/audit/logs", query)
	want := fmt.Sprintf("Service internal error: Failed to fetch audit logs from peer %d: ", c.peers[1].id)
	if status != 500 || !strings.Contains(string(body), want) {
		t.Errorf("a peer down: %d %s, want 500 %q", status, body, want)
	}
}
