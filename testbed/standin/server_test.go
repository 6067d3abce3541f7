package standin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/qdrantrotator/rotator/testbed/syncbuf"
)

const testKey = "test-api-key-0123456789abcdefghij"

// testServer builds a handler over a fresh store with the given environment.
func testServer(t *testing.T, env ...string) (*server, string) {
	t.Helper()
	dir := t.TempDir()
	tree, _, err := loadMerged(layerSource{dir: dir, env: env})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decodeConfig(tree)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	return newServer(cfg, st, newLogger(io.Discard, 0), nil), dir
}

type resp struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, h http.Handler, method, path, body string, kv ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i < len(kv); i += 2 {
		r.Header.Set(kv[i], kv[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return resp{w.Code, w.Result().Header, w.Body.String()}
}

func errorText(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Status struct {
			Error string `json:"error"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not an error envelope: %q", body)
	}
	return e.Status.Error
}

func TestWhitelistAndAuthResponses(t *testing.T) {
	s, _ := testServer(t, "QDRANT__SERVICE__API_KEY="+testKey)
	for _, tc := range []struct {
		method, path string
		key          string
		status       int
		body         string
	}{
		{"GET", "/", "", 200, ""},
		{"GET", "/healthz", "", 200, "healthz check passed"},
		{"GET", "/healthz/", "", 200, "healthz check passed"},
		{"GET", "/livez", "", 200, "healthz check passed"},
		{"GET", "/readyz", "", 200, "all shards are ready"},
		{"GET", "//readyz//", "", 200, "all shards are ready"},
		{"POST", "/healthz", "", 401, msgNoCredential},
		{"HEAD", "/healthz", "", 401, msgNoCredential},
		{"GET", "/readyzz", "", 401, msgNoCredential},
		{"GET", "/dashboard", "", 401, msgNoCredential},
		{"GET", "/dashboard%2f..%2fcollections", "", 401, msgNoCredential},
		{"GET", "/nope", "", 401, msgNoCredential},
		{"GET", "/nope", testKey, 404, ""},
		{"POST", "/healthz", testKey, 404, ""},
		{"GET", "/metrics", "", 401, msgNoCredential},
		{"GET", "/telemetry", "wrong", 401, msgInvalidKey},
		{"GET", "/collections", "", 401, msgNoCredential},
		{"GET", "/collections/", testKey, 200, ""},
	} {
		var kv []string
		if tc.key != "" {
			kv = []string{"api-key", tc.key}
		}
		r := do(t, s, tc.method, tc.path, "", kv...)
		if r.status != tc.status || (tc.body != "" && r.body != tc.body) {
			t.Errorf("%s %s: got %d %q, want %d %q", tc.method, tc.path, r.status, r.body, tc.status, tc.body)
		}
		if (r.status == 401 || r.status == 404) && len(r.header.Values("Content-Type")) != 0 {
			t.Errorf("%s %s: auth-layer response has Content-Type %q", tc.method, tc.path, r.header.Get("Content-Type"))
		}
		if r.status == 404 && r.body != "" {
			t.Errorf("%s %s: 404 body %q", tc.method, tc.path, r.body)
		}
	}
	root := do(t, s, "GET", "/", "")
	if root.body != `{"title":"qdrant - vector search engine","version":"1.19.0","commit":"standin"}` {
		t.Errorf("root body %s", root.body)
	}
	if ct := do(t, s, "GET", "/readyz", "").header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("readyz content type %q", ct)
	}
}

func TestNoContentTypeOverRealHTTP(t *testing.T) {
	s, _ := testServer(t, "QDRANT__SERVICE__API_KEY="+testKey)
	ts := httptest.NewServer(s)
	defer ts.Close()
	res, err := http.Get(ts.URL + "/collections")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 401 || string(b) != msgNoCredential || len(res.Header.Values("Content-Type")) != 0 {
		t.Fatalf("got %d %q content-type=%q", res.StatusCode, b, res.Header.Values("Content-Type"))
	}
}

func TestCORSPreflightBeforeAuth(t *testing.T) {
	s, _ := testServer(t, "QDRANT__SERVICE__API_KEY="+testKey)
	r := do(t, s, "OPTIONS", "/collections", "", "Origin", "http://ui", "Access-Control-Request-Method", "PUT",
		"Access-Control-Request-Headers", "api-key")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "http://ui" ||
		r.header.Get("Access-Control-Allow-Methods") == "" || r.header.Get("Access-Control-Allow-Headers") != "api-key" {
		t.Fatalf("preflight: %+v", r)
	}
	// Without Access-Control-Request-Method it is a plain OPTIONS request: auth applies.
	if r := do(t, s, "OPTIONS", "/collections", "", "Origin", "http://ui"); r.status != 401 {
		t.Fatalf("plain OPTIONS: %d", r.status)
	}
	s2, _ := testServer(t, "QDRANT__SERVICE__API_KEY="+testKey, "QDRANT__SERVICE__ENABLE_CORS=false")
	if r := do(t, s2, "OPTIONS", "/collections", "", "Origin", "http://ui", "Access-Control-Request-Method", "GET"); r.status != 401 {
		t.Fatalf("cors disabled: %d", r.status)
	}
}

func TestReadOnlyAndScopedAccess(t *testing.T) {
	s, _ := testServer(t, "QDRANT__SERVICE__API_KEY="+testKey, "QDRANT__SERVICE__READ_ONLY_API_KEY=ro",
		"QDRANT__SERVICE__JWT_RBAC=true")
	create := `{"vectors":{"size":2,"distance":"Dot"}}`
	for _, c := range []string{"a", "b"} {
		if r := do(t, s, "PUT", "/collections/"+c, create, "api-key", testKey); r.status != 200 {
			t.Fatalf("create %s: %+v", c, r)
		}
	}
	points := `{"points":[{"id":1,"vector":[1,2]}]}`
	tokA := sign(t, testKey, jwt.MapClaims{"access": []any{map[string]any{"collection": "a", "access": "r"}}})
	tokR := sign(t, testKey, jwt.MapClaims{"access": "r"})
	for _, tc := range []struct {
		name, method, path, body, key string
		status                        int
		msg                           string
	}{
		{"ro create", "PUT", "/collections/c", create, "ro", 403, "Forbidden: Global manage access is required"},
		{"ro delete", "DELETE", "/collections/a", "", "ro", 403, "Forbidden: Global manage access is required"},
		{"ro upsert", "PUT", "/collections/a/points", points, "ro", 403, "Forbidden: Global manage access is required"},
		{"ro count", "POST", "/collections/a/points/count", `{"exact":true}`, "ro", 200, ""},
		{"jwt r upsert", "PUT", "/collections/a/points", points, tokR, 403, "Forbidden: Global manage access is required"},
		{"scoped other", "GET", "/collections/b", "", tokA, 403, "Forbidden: Access to collection b is required"},
		{"scoped write", "PUT", "/collections/a/points", points, tokA, 403, "Forbidden: Write access to collection a is required"},
		{"scoped create", "PUT", "/collections/z", create, tokA, 403, "Forbidden: Global access is required"},
		{"scoped read", "GET", "/collections/a", "", tokA, 200, ""},
		{"ro malformed body is 400 first", "PUT", "/collections/c", "{", "ro", 400, ""},
	} {
		r := do(t, s, tc.method, tc.path, tc.body, "api-key", tc.key)
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, r.status, tc.status, r.body)
			continue
		}
		if tc.msg != "" {
			if got := errorText(t, r.body); got != tc.msg || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %q (%s), want %q", tc.name, got, r.header.Get("Content-Type"), tc.msg)
			}
		}
	}
	r := do(t, s, "GET", "/collections", "", "api-key", tokA)
	if !strings.Contains(r.body, `"collections":[{"name":"a"}]`) {
		t.Fatalf("scoped listing: %s", r.body)
	}
	r = do(t, s, "GET", "/collections", "", "api-key", "ro")
	if !strings.Contains(r.body, `"collections":[{"name":"a"},{"name":"b"}]`) {
		t.Fatalf("listing: %s", r.body)
	}
}

func TestCollectionsAndPointsAPI(t *testing.T) {
	s, dir := testServer(t) // no keys: no authentication at all
	type call struct {
		method, path, body string
		status             int
		contains           string
	}
	for _, c := range []call{
		{"GET", "/collections/c/exists", "", 200, `"result":{"exists":false}`},
		{"PUT", "/collections/c", `{"vectors":{"size":3,"distance":"Euclid"}}`, 200, `"result":true,"status":"ok"`},
		{"PUT", "/collections/c", `{"vectors":{"size":3,"distance":"Euclid"}}`, 409, "Wrong input: Collection `c` already exists!"},
		{"PUT", "/collections/e", `{}`, 200, `"result":true`},
		{"PUT", "/collections/bad", `{"vectors":{"size":0,"distance":"Cosine"}}`, 422, "Validation error in JSON body: "},
		{"PUT", "/collections/bad", `{"vectors":`, 400, "Format error in JSON body: "},
		{"PUT", "/collections/bad", `{"vectors":{"size":3,"distance":"Hamming"}}`, 400, "Format error in JSON body: "},
		{"GET", "/collections/c/exists", "", 200, `"result":{"exists":true}`},
		{"PUT", "/collections/missing/points?wait=true", `{"points":[{"id":1,"vector":[1,2,3]}]}`, 404, "Not found: Collection `missing` doesn't exist!"},
		{"PUT", "/collections/c/points", `{"points":[{"id":1,"vector":[1,2,3],"payload":{"k":"<v>"}}]}`, 200, `"status":"acknowledged"`},
		{"PUT", "/collections/c/points?wait=true", `{"points":[{"id":"6F9619FF-8B86-D011-B42D-00C04FC964FF","vector":[0,0,1]}]}`, 200, `{"operation_id":1,"status":"completed"}`},
		{"PUT", "/collections/c/points?wait=maybe", `{"points":[]}`, 400, "query parameters"},
		{"PUT", "/collections/c/points?wait=true", `{"points":[{"id":2,"vector":[1,2]}]}`, 400, "Vector dimension error: expected dim: 3, got 2"},
		{"PUT", "/collections/c/points?wait=true", `{"points":[{"id":-1,"vector":[1,2,3]}]}`, 400, "Format error in JSON body: "},
		{"PUT", "/collections/c/points?wait=true", `{"batch":{"ids":[3,4],"vectors":[[1,1,1],[2,2,2]]}}`, 200, `"status":"completed"`},
		{"POST", "/collections/c/points/count", `{"exact":true}`, 200, `"result":{"count":4}`},
		{"POST", "/collections/c/points/count", ` `, 400, "Format error in JSON body: "},
		{"POST", "/collections/missing/points/count", `{"exact":true}`, 404, "Not found: Collection `missing` doesn't exist!"},
		{"POST", "/collections/c/points", `{"ids":[1,"6f9619ff-8b86-d011-b42d-00c04fc964ff",99]}`, 200,
			`"result":[{"id":1,"payload":{"k":"<v>"},"vector":null},{"id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","payload":{},"vector":null}]`},
		{"POST", "/collections/c/points", `{"ids":[1],"with_payload":false,"with_vector":true}`, 200, `[{"id":1,"payload":null,"vector":[1,2,3]}]`},
		{"POST", "/collections/c/points/scroll", `{"limit":2}`, 200, `"next_page_offset":4`},
		{"POST", "/collections/c/points/scroll", `{"limit":2,"offset":4}`, 200, `{"id":4,"payload":{},"vector":null},{"id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","payload":{},"vector":null}],"next_page_offset":null`},
		{"GET", "/collections/c", "", 200, `"points_count":4`},
		{"GET", "/collections", "", 200, `{"collections":[{"name":"c"},{"name":"e"}]}`},
		{"GET", "/cluster", "", 200, `"result":{"status":"disabled"}`},
		{"GET", "/telemetry", "", 200, `"number_of_collections":2`},
		{"GET", "/metrics", "", 200, "collections_total 2"},
		{"DELETE", "/collections/e", "", 200, `"result":true`},
		{"DELETE", "/collections/e", "", 200, `"result":false`},
	} {
		r := do(t, s, c.method, c.path, c.body)
		if r.status != c.status || !strings.Contains(r.body, c.contains) {
			t.Errorf("%s %s %s: got %d %s, want %d containing %s", c.method, c.path, c.body, r.status, r.body, c.status, c.contains)
		}
	}
	if r := do(t, s, "GET", "/metrics", ""); !strings.Contains(r.body, `app_info{name="qdrant",version="1.19.0"} 1`) {
		t.Errorf("metrics: %s", r.body)
	}
	// Missing JSON content type is rejected like actix's Json extractor.
	r := httptest.NewRequest("PUT", "/collections/x", strings.NewReader(`{}`))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 400 {
		t.Errorf("missing content type: %d %s", w.Code, w.Body.String())
	}

	// Replay: a second store over the same directory sees the same data; a torn last line is dropped.
	s.store.close()
	logPath := filepath.Join(dir, "storage", oplogName)
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"upsert","c":"c","points":[{"id":77`)
	f.Close()
	st, err := openStore(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if n, ok := st.count("c"); !ok || n != 4 {
		t.Fatalf("replayed count %d %v", n, ok)
	}
	if _, ok := st.count("e"); ok {
		t.Fatal("deleted collection came back")
	}
	if op, err := st.upsert("c", []storedPoint{{ID: pointID{num: 9}, Vectors: map[string][]float32{"": {1, 1, 1}}}}, true); err != nil || op != 3 {
		t.Fatalf("upsert after replay: op=%d err=%v", op, err)
	}
	data, _ := os.ReadFile(logPath)
	if bytes.Contains(data, []byte(`"id":77`)) || !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("torn line not removed: %s", data)
	}
}

func TestRunLifecycle(t *testing.T) {
	dir := t.TempDir()
	var out, errOut syncbuf.Buffer
	ready := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, Options{Dir: dir, Stdout: &out, Stderr: &errOut, Ready: func(a net.Addr) { ready <- a },
			Env: []string{"QDRANT__SERVICE__HOST=127.0.0.1", "QDRANT__SERVICE__HTTP_PORT=0",
				"QDRANT__SERVICE__API_KEY=" + testKey, "QDRANT__SERVICE__ALT_API_KEY=", "QDRANT__SERVICE__METRICS_PORT=0"}})
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("exited %d: %s %s", code, out.String(), errOut.String())
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	res, err := http.Get("http://" + addr.String() + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", res, err)
	}
	res.Body.Close()
	var metricsPort string
	for _, line := range strings.Split(out.String(), "\n") {
		if i := strings.Index(line, "Qdrant metrics listening on "); i >= 0 {
			metricsPort = strings.TrimSpace(line[i+len("Qdrant metrics listening on "):])
		}
	}
	res, err = http.Get("http://127.0.0.1:" + metricsPort + "/metrics")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("metrics port without key: %v %v", res, err)
	}
	res.Body.Close()
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit code %d", code)
	}
	logs := out.String()
	for _, want := range []string{"TLS disabled for REST API", "Qdrant HTTP listening on",
		"Service alt_api_key is set but empty, it is treated as unset and authentication may be disabled"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, testKey) || strings.Contains(errOut.String(), testKey) {
		t.Error("a key was printed")
	}
	if _, err := os.Stat(filepath.Join(dir, "storage", oplogName)); err != nil {
		t.Errorf("storage not created: %v", err)
	}
}

func TestRunRefusals(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"stop-here": "", "config/local.yaml": "service:\n  alt_api_key: new\n"})
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		code int
		msg  string
	}{
		{"fail if set", nil, []string{"STANDIN_FAIL_IF_SET=service.alt_api_key"}, ExitRefused,
			"standin: refusing to start: service.alt_api_key is set (STANDIN_FAIL_IF_SET)"},
		{"fail if file", nil, []string{"STANDIN_FAIL_IF_FILE=stop-here"}, ExitRefused, "STANDIN_FAIL_IF_FILE"},
		{"bad port", nil, []string{"QDRANT__SERVICE__HTTP_PORT=abc"}, ExitConfig, "service.http_port"},
		{"bad jwt_rbac", nil, []string{"QDRANT__SERVICE__JWT_RBAC=maybe"}, ExitConfig, "service.jwt_rbac"},
		{"unknown flag", []string{"--nope"}, nil, ExitUsage, "unexpected argument '--nope'"},
		{"bad delay", nil, []string{"STANDIN_START_DELAY=x"}, ExitUsage, "STANDIN_START_DELAY"},
		{"missing tls cert", nil, []string{"QDRANT__SERVICE__ENABLE_TLS=true", "QDRANT__SERVICE__HTTP_PORT=0",
			"QDRANT__SERVICE__HOST=127.0.0.1"}, ExitConfig, "cert.pem"},
	} {
		var out, errOut syncbuf.Buffer
		code := Run(context.Background(), Options{Dir: dir, Args: tc.args, Env: tc.env, Stdout: &out, Stderr: &errOut})
		if code != tc.code || !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("%s: code %d stderr %q, want %d containing %q", tc.name, code, errOut.String(), tc.code, tc.msg)
		}
		if strings.Contains(out.String()+errOut.String(), "new") && tc.name == "fail if set" {
			t.Errorf("%s: key value printed", tc.name)
		}
	}
}
