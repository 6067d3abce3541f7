package conformance

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Exact texts from qdrant.md §3.3 and §9.
const (
	msgNoCredential  = "Must provide an API key or an Authorization bearer token"
	msgInvalidKey    = "Invalid API key or JWT"
	msgGlobalManage  = "Forbidden: Global manage access is required"
	msgInvalidSig    = "InvalidSignature"
	msgExpired       = "ExpiredSignature"
	msgHealthz       = "healthz check passed"
	msgReadyz        = "all shards are ready"
	versionInfoTitle = "qdrant - vector search engine"
	createBody       = `{"vectors":{"size":4,"distance":"Cosine"}}`
)

// semverRE matches the version in VersionInfo.
var semverRE = regexp.MustCompile(`^\d+\.\d+\.\d+`)

// keySet holds the keys of one node. Never print them.
type keySet struct {
	api, alt, readOnly string
}

// newKey returns a random 43-character base64url key (32 random bytes), made per test.
func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random key: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// newName returns a random collection name with the given prefix.
func newName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random name: %v", err)
	}
	return prefix + "_" + hex.EncodeToString(b)
}

// header is one request header, sent with its name spelled exactly as given.
type header struct{ name, value string }

func apiKey(k string) header { return header{"api-key", k} }
func bearer(k string) header { return header{"Authorization", "Bearer " + k} }

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// client sends requests to one node. base is asked for the URL at every request, so a client stays valid
// across a node's Restart.
type client struct {
	base func() string
	http *http.Client
}

// newClient returns a client for a node. rootCA, when not nil, is the PEM of the only CA trusted for HTTPS.
func newClient(base func() string, rootCA []byte) *client {
	tr := &http.Transport{DisableKeepAlives: true}
	if rootCA != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(rootCA)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &client{base: base, http: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

func nodeClient(n Node) *client { return newClient(n.URL, nil) }

// try sends one request; body "" sends none, any other body is sent as application/json.
func (c *client) try(method, path, body string, headers ...header) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.base(), "/")+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		// Raw map access keeps the name's spelling on the wire.
		req.Header[h.name] = append(req.Header[h.name], h.value)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// do is try that fails the test on a transport error.
func (c *client) do(t *testing.T, method, path, body string, headers ...header) response {
	t.Helper()
	r, err := c.try(method, path, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// expectPlain checks an auth-layer answer: the status, the exact plain-text body and no Content-Type header.
func expectPlain(t *testing.T, what string, r response, status int, body string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (body %q)", what, r.status, status, snippet(r.body))
	}
	if string(r.body) != body {
		t.Errorf("%s: body %q, want %q", what, snippet(r.body), body)
	}
	if ct := r.header.Values("Content-Type"); len(ct) != 0 {
		t.Errorf("%s: Content-Type %q present, want no Content-Type header", what, ct)
	}
}

// expectStatus checks only the status code.
func expectStatus(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (body %q)", what, r.status, status, snippet(r.body))
	}
}

// envelope is the REST answer of §9.
type envelope struct {
	Result json.RawMessage `json:"result"`
	Status json.RawMessage `json:"status"`
	Time   *float64        `json:"time"`
}

// decodeEnvelope parses a JSON envelope and checks "time" is a number and the other keys are known.
func decodeEnvelope(t *testing.T, what string, r response) (envelope, map[string]json.RawMessage, bool) {
	t.Helper()
	var env envelope
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Errorf("%s: body is not a JSON object: %v (body %q)", what, err, snippet(r.body))
		return env, nil, false
	}
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Errorf("%s: envelope: %v (body %q)", what, err, snippet(r.body))
		return env, nil, false
	}
	if env.Time == nil {
		t.Errorf("%s: envelope has no numeric \"time\" (body %q)", what, snippet(r.body))
	}
	for k := range raw {
		switch k {
		case "result", "status", "time", "usage":
		default:
			t.Errorf("%s: unexpected envelope key %q", what, k)
		}
	}
	return env, raw, true
}

// expectOK checks a 200 success envelope {"result":...,"status":"ok","time":...} and returns result.
func expectOK(t *testing.T, what string, r response) json.RawMessage {
	t.Helper()
	if r.status != http.StatusOK {
		t.Errorf("%s: status %d, want 200 (body %q)", what, r.status, snippet(r.body))
		return nil
	}
	env, raw, ok := decodeEnvelope(t, what, r)
	if !ok {
		return nil
	}
	if string(env.Status) != `"ok"` {
		t.Errorf("%s: envelope status %s, want \"ok\"", what, env.Status)
	}
	if _, has := raw["result"]; !has {
		t.Errorf("%s: envelope has no \"result\"", what)
	}
	return env.Result
}

// expectResult checks a success envelope whose result is the given JSON value.
func expectResult(t *testing.T, what string, r response, want string) {
	t.Helper()
	got := expectOK(t, what, r)
	if got == nil {
		return
	}
	if !jsonEqual(got, []byte(want)) {
		t.Errorf("%s: result %s, want %s", what, got, want)
	}
}

// expectError checks an error envelope {"status":{"error":msg},"time":...} with no result.
// With exact false the error only has to contain msg.
func expectError(t *testing.T, what string, r response, status int, msg string, exact bool) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (body %q)", what, r.status, status, snippet(r.body))
	}
	env, raw, ok := decodeEnvelope(t, what, r)
	if !ok {
		return
	}
	if _, has := raw["result"]; has {
		t.Errorf("%s: error envelope has a \"result\" key", what)
	}
	var st struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(env.Status, &st); err != nil || st.Error == nil {
		t.Errorf("%s: envelope status %s, want {\"error\": ...}", what, env.Status)
		return
	}
	if exact && *st.Error != msg {
		t.Errorf("%s: error %q, want %q", what, *st.Error, msg)
	}
	if !exact && !strings.Contains(*st.Error, msg) {
		t.Errorf("%s: error %q, want it to contain %q", what, *st.Error, msg)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// snippet shortens a body for a failure message.
func snippet(b []byte) string {
	const max = 300
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// signJWT signs claims with secret using method (HS256 unless told).
func signJWT(t *testing.T, method jwt.SigningMethod, secret string, claims map[string]any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, jwt.MapClaims(claims)).SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("sign JWT: %v", err)
	}
	return s
}

// hs256 signs claims with HS256.
func hs256(t *testing.T, secret string, claims map[string]any) string {
	t.Helper()
	return signJWT(t, jwt.SigningMethodHS256, secret, claims)
}

// expIn returns an "exp" claim d from now (negative = in the past).
func expIn(d time.Duration) int64 { return time.Now().Add(d).Unix() }

// yamlService renders a config file that sets the given service.* fields.
// Values are double-quoted so a key can never be read as another YAML type.
func yamlService(fields map[string]any) string {
	var b strings.Builder
	b.WriteString("service:\n")
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		switch v := fields[k].(type) {
		case string:
			fmt.Fprintf(&b, "  %s: %q\n", k, v)
		default:
			fmt.Fprintf(&b, "  %s: %v\n", k, v)
		}
	}
	return b.String()
}

// Collection and point helpers, all with a key that may write.

// createCollection creates a collection the case needs; the case stops if that fails.
func createCollection(t *testing.T, c *client, key, name string) {
	t.Helper()
	r := c.do(t, "PUT", "/collections/"+name, createBody, apiKey(key))
	if r.status != http.StatusOK {
		t.Fatalf("precondition: create collection %s: status %d (body %q)", name, r.status, snippet(r.body))
	}
	expectResult(t, "create collection "+name, r, "true")
}

// points returns an upsert body with ids 1..n, vectors of dimension 4 and payload {"n": id}.
func points(n int) string {
	var parts []string
	for i := 1; i <= n; i++ {
		parts = append(parts, fmt.Sprintf(`{"id":%d,"vector":[0.%d,0.2,0.3,0.4],"payload":{"n":%d}}`, i, i, i))
	}
	return `{"points":[` + strings.Join(parts, ",") + `]}`
}

// upsertWait writes points(n) with wait=true; the case stops if that is refused.
func upsertWait(t *testing.T, c *client, key, name string, n int) {
	t.Helper()
	r := c.do(t, "PUT", "/collections/"+name+"/points?wait=true", points(n), apiKey(key))
	if r.status != http.StatusOK {
		t.Fatalf("precondition: upsert wait=true into %s: status %d (body %q)", name, r.status, snippet(r.body))
	}
	res := expectOK(t, "upsert wait=true into "+name, r)
	var ur struct {
		Status string `json:"status"`
	}
	if res != nil && (json.Unmarshal(res, &ur) != nil || ur.Status != "completed") {
		t.Errorf("upsert wait=true into %s: result %s, want status completed", name, res)
	}
}

// countPoints returns the exact point count of a collection.
func countPoints(t *testing.T, c *client, key, name string) int {
	t.Helper()
	res := expectOK(t, "count "+name, c.do(t, "POST", "/collections/"+name+"/points/count", `{"exact":true}`, apiKey(key)))
	var cr struct {
		Count *int `json:"count"`
	}
	if res == nil || json.Unmarshal(res, &cr) != nil || cr.Count == nil {
		t.Errorf("count %s: result %s, want {\"count\":N}", name, res)
		return -1
	}
	return *cr.Count
}

// listCollections returns the names GET /collections shows to the caller.
func listCollections(t *testing.T, c *client, headers ...header) []string {
	t.Helper()
	res := expectOK(t, "list collections", c.do(t, "GET", "/collections", "", headers...))
	var lr struct {
		Collections []struct {
			Name string `json:"name"`
		} `json:"collections"`
	}
	if res == nil || json.Unmarshal(res, &lr) != nil || lr.Collections == nil {
		t.Errorf("list collections: result %s, want {\"collections\":[...]}", res)
		return nil
	}
	var names []string
	for _, c := range lr.Collections {
		names = append(names, c.Name)
	}
	return names
}

// Key checks used by the config cases. label names the key in failure messages; the key itself is never printed.

// expectReads checks the key may read (GET /collections answers 200).
func expectReads(t *testing.T, c *client, label, key string) {
	t.Helper()
	expectStatus(t, label+" reads GET /collections", c.do(t, "GET", "/collections", "", apiKey(key)), http.StatusOK)
}

// expectWrites checks the key may create (and then deletes) a collection.
func expectWrites(t *testing.T, c *client, label, key string) {
	t.Helper()
	name := newName(t, "w")
	r := c.do(t, "PUT", "/collections/"+name, createBody, apiKey(key))
	expectResult(t, label+" creates a collection", r, "true")
	if r.status == http.StatusOK {
		c.do(t, "DELETE", "/collections/"+name, "", apiKey(key))
	}
}

// expectReadOnly checks the key may read but gets the 403 envelope on a write.
func expectReadOnly(t *testing.T, c *client, label, key string) {
	t.Helper()
	expectReads(t, c, label, key)
	r := c.do(t, "PUT", "/collections/"+newName(t, "ro"), createBody, apiKey(key))
	expectError(t, label+" creating a collection", r, http.StatusForbidden, msgGlobalManage, true)
}

// expectRejected checks the key is not accepted: 401 "Invalid API key or JWT".
func expectRejected(t *testing.T, c *client, label, key string) {
	t.Helper()
	expectPlain(t, label+" on GET /collections", c.do(t, "GET", "/collections", "", apiKey(key)), http.StatusUnauthorized, msgInvalidKey)
}

// expectAuthOn checks a request without credential is refused.
func expectAuthOn(t *testing.T, c *client) {
	t.Helper()
	expectPlain(t, "no credential on GET /collections", c.do(t, "GET", "/collections", ""), http.StatusUnauthorized, msgNoCredential)
}

// expectNoAuth checks the node has no auth at all: reads and writes without any credential.
func expectNoAuth(t *testing.T, c *client) {
	t.Helper()
	expectStatus(t, "GET /collections without credential", c.do(t, "GET", "/collections", ""), http.StatusOK)
	name := newName(t, "open")
	expectResult(t, "create collection without credential", c.do(t, "PUT", "/collections/"+name, createBody), "true")
}
