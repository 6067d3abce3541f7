package standin

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestExtractKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		key  string
		ok   bool
	}{
		{"none", hdr(), "", false},
		{"api-key", hdr("api-key", "k"), "k", true},
		{"api-key wins over bearer", hdr("api-key", "k", "Authorization", "Bearer b"), "k", true},
		{"empty api-key still wins", hdr("api-key", "", "Authorization", "Bearer b"), "", true},
		{"bearer", hdr("Authorization", "Bearer b"), "b", true},
		{"bearer lower-case prefix", hdr("Authorization", "bearer b"), "", false},
		{"basic", hdr("Authorization", "Basic Zm9v"), "", false},
		{"bearer two spaces keeps the space", hdr("Authorization", "Bearer  b"), " b", true},
		{"non-ascii api-key is absent", hdr("api-key", "k\xff", "Authorization", "Bearer b"), "b", true},
		{"tab is visible enough", hdr("api-key", "a\tb"), "a\tb", true},
		{"first api-key value", hdr("api-key", "one", "api-key", "two"), "one", true},
	} {
		key, ok := extractKey(tc.h)
		if key != tc.key || ok != tc.ok {
			t.Errorf("%s: got (%q,%v), want (%q,%v)", tc.name, key, ok, tc.key, tc.ok)
		}
	}
}

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

func TestValidateDecisionOrder(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newAuthKeys(ServiceConfig{APIKey: strp("rw"), AltAPIKey: strp("alt"), ReadOnlyAPIKey: strp("ro")})
	for _, tc := range []struct {
		name   string
		h      http.Header
		status int
		msg    string
		global globalMode
	}{
		{"missing", hdr(), 401, msgNoCredential, 0},
		{"wrong", hdr("api-key", "nope"), 401, msgInvalidKey, 0},
		{"empty api-key", hdr("api-key", ""), 401, msgInvalidKey, 0},
		{"rw", hdr("api-key", "rw"), 0, "", globalManage},
		{"alt", hdr("Authorization", "Bearer alt"), 0, "", globalManage},
		{"ro", hdr("api-key", "ro"), 0, "", globalRead},
		{"prefix of key", hdr("api-key", "r"), 401, msgInvalidKey, 0},
		{"jwt-shaped but rbac off", hdr("api-key", sign(t, "rw", jwt.MapClaims{})), 401, msgInvalidKey, 0},
	} {
		acc, aerr := k.validate(tc.h, now)
		switch {
		case tc.status != 0 && (aerr == nil || aerr.status != tc.status || aerr.msg != tc.msg):
			t.Errorf("%s: got %+v, want %d %q", tc.name, aerr, tc.status, tc.msg)
		case tc.status == 0 && (aerr != nil || acc.scoped || acc.global != tc.global):
			t.Errorf("%s: got %+v %+v", tc.name, acc, aerr)
		}
	}
	// Same value for api_key and read_only_api_key: write is checked first.
	same := newAuthKeys(ServiceConfig{APIKey: strp("k"), ReadOnlyAPIKey: strp("k")})
	if acc, err := same.validate(hdr("api-key", "k"), now); err != nil || acc.global != globalManage {
		t.Fatalf("rw must win over read-only: %+v %+v", acc, err)
	}
	// Only a read-only key configured: authentication is still on.
	ro := newAuthKeys(ServiceConfig{ReadOnlyAPIKey: strp("ro"), JWTRBAC: boolp(true)})
	if ro == nil || len(ro.jwtSecrets) != 0 {
		t.Fatal("read-only key alone: auth on, no JWT secrets")
	}
}

func TestAccessChecks(t *testing.T) {
	scoped := access{scoped: true, colls: []collAccess{{"a", collRead}, {"b", collReadWrite}, {"p", collPointsWrite}}}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"ro write", readOnlyAccess().checkCollection("a", requirements{write: true}), "Forbidden: Global manage access is required"},
		{"ro manage", readOnlyAccess().checkGlobal(requirements{manage: true}), "Forbidden: Global manage access is required"},
		{"ro read", readOnlyAccess().checkCollection("a", requirements{}), ""},
		{"scoped other", scoped.checkCollection("x", requirements{}), "Forbidden: Access to collection x is required"},
		{"scoped r write", scoped.checkCollection("a", requirements{write: true}), "Forbidden: Write access to collection a is required"},
		{"scoped rw write", scoped.checkCollection("b", requirements{write: true}), ""},
		{"scoped prw write", scoped.checkCollection("p", requirements{write: true}), ""},
		{"scoped create", scoped.checkGlobal(requirements{manage: true}), "Forbidden: Global access is required"},
	} {
		got := ""
		if tc.err != nil {
			got = tc.err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if v := scoped.visible([]string{"x", "b", "a"}); len(v) != 2 || v[0] != "a" || v[1] != "b" {
		t.Fatalf("visible = %v", v)
	}
}
