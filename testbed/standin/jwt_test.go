package standin

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func sign(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	return signWith(t, jwt.SigningMethodHS256, secret, claims)
}

func signWith(t *testing.T, m jwt.SigningMethod, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawToken builds an HS256 token over an arbitrary payload text.
func rawToken(t *testing.T, secret, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	msg := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(msg, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return msg + "." + enc.EncodeToString(sig)
}

func TestJWTDecisions(t *testing.T) {
	const api, alt = "api-key-secret-0123456789abcdef0", "alt-key-secret-0123456789abcdef0"
	now := time.Unix(1_800_000_000, 0)
	n := now.Unix()
	k := newAuthKeys(ServiceConfig{APIKey: strp(api), AltAPIKey: strp(alt), ReadOnlyAPIKey: strp("ro"), JWTRBAC: boolp(true)})
	single := newAuthKeys(ServiceConfig{APIKey: strp(api), JWTRBAC: boolp(true)})
	hs256 := `{"alg":"HS256","typ":"JWT"}`
	for _, tc := range []struct {
		name   string
		token  string
		status int
		msg    string
		check  func(access) bool
	}{
		{"no access claim = manage", sign(t, api, jwt.MapClaims{}), 0, "", func(a access) bool { return !a.scoped && a.global == globalManage }},
		{"signed with alt", sign(t, alt, jwt.MapClaims{"access": "r"}), 0, "", func(a access) bool { return !a.scoped && a.global == globalRead }},
		{"global m", sign(t, api, jwt.MapClaims{"access": "m"}), 0, "", func(a access) bool { return a.global == globalManage }},
		{"collection list", sign(t, api, jwt.MapClaims{"access": []any{map[string]any{"collection": "c", "access": "rw"}}}), 0, "",
			func(a access) bool { return a.scoped && len(a.colls) == 1 && a.colls[0].mode == collReadWrite }},
		{"exp within leeway", sign(t, api, jwt.MapClaims{"exp": n - 29}), 0, "", func(access) bool { return true }},
		{"exp past leeway", sign(t, api, jwt.MapClaims{"exp": n - 31}), 403, "ExpiredSignature", nil},
		{"nbf and iss ignored", sign(t, api, jwt.MapClaims{"nbf": n + 3600, "iss": "x", "aud": "y"}), 0, "", func(access) bool { return true }},
		{"exp null", rawToken(t, api, hs256, `{"exp":null}`), 0, "", func(access) bool { return true }},
		{"wrong secret", sign(t, "other-secret", jwt.MapClaims{}), 403, "InvalidSignature", nil},
		{"wrong secret, bad claims: signature first", rawToken(t, "other", hs256, `{"access":5}`), 403, "InvalidSignature", nil},
		{"expired and wrong secret", sign(t, "other", jwt.MapClaims{"exp": n - 100}), 403, "InvalidSignature", nil},
		{"HS384", signWith(t, jwt.SigningMethodHS384, api, jwt.MapClaims{}), 401, msgInvalidKey, nil},
		{"alg none", rawToken(t, api, `{"alg":"none"}`, `{}`), 401, msgInvalidKey, nil},
		{"claims not JSON", rawToken(t, api, hs256, `nope`), 401, msgInvalidKey, nil},
		{"access unknown", sign(t, api, jwt.MapClaims{"access": "x"}), 401, msgInvalidKey, nil},
		{"access null", rawToken(t, api, hs256, `{"access":null}`), 401, msgInvalidKey, nil},
		{"exp float", rawToken(t, api, hs256, `{"exp":1.5}`), 401, msgInvalidKey, nil},
		{"exp string", sign(t, api, jwt.MapClaims{"exp": "soon"}), 401, msgInvalidKey, nil},
		{"collection mode m", sign(t, api, jwt.MapClaims{"access": []any{map[string]any{"collection": "c", "access": "m"}}}), 401, msgInvalidKey, nil},
		{"duplicate collection", sign(t, api, jwt.MapClaims{"access": []any{
			map[string]any{"collection": "c", "access": "r"}, map[string]any{"collection": "c", "access": "rw"}}}),
			401, "access.access.collection: Collection name should be unique", nil},
		{"deprecated payload", sign(t, api, jwt.MapClaims{"access": []any{
			map[string]any{"collection": "c", "access": "r", "payload": map[string]any{"k": "v"}}}}),
			401, "access.access.payload: The 'payload' constraint is deprecated and should not be used", nil},
		{"payload null is fine", rawToken(t, api, hs256, `{"access":[{"collection":"c","access":"r","payload":null}]}`), 0, "", func(a access) bool { return a.scoped }},
		{"signature bad base64", replaceSignature(sign(t, api, jwt.MapClaims{}), "!!"), 401, msgInvalidKey, nil},
		{"signature padded", replaceSignature(sign(t, api, jwt.MapClaims{}), "AAAA=="), 401, msgInvalidKey, nil},
		{"two parts", "a.b", 401, msgInvalidKey, nil},
	} {
		keys := k
		if tc.status == 401 {
			// With two read-write keys, a token signed with api_key that is otherwise "not a JWT" still fails the
			// alt_api_key parser's signature check (403), exactly as in Qdrant; see TestJWTTwoParsersQuirk.
			keys = single
		}
		acc, aerr := keys.validate(hdr("Authorization", "Bearer "+tc.token), now)
		if tc.status != 0 {
			if aerr == nil || aerr.status != tc.status || aerr.msg != tc.msg {
				t.Errorf("%s: got %+v, want %d %q", tc.name, aerr, tc.status, tc.msg)
			}
			continue
		}
		if aerr != nil || !tc.check(acc) {
			t.Errorf("%s: got %+v %+v", tc.name, acc, aerr)
		}
	}
}

func TestJWTDisabledWithoutRWKey(t *testing.T) {
	// jwt_rbac with only a read-only key: tokens are never accepted.
	k := newAuthKeys(ServiceConfig{ReadOnlyAPIKey: strp("ro"), JWTRBAC: boolp(true)})
	_, aerr := k.validate(hdr("api-key", sign(t, "ro", jwt.MapClaims{})), time.Now())
	if aerr == nil || aerr.status != 401 || aerr.msg != msgInvalidKey {
		t.Fatalf("got %+v", aerr)
	}
}

func TestJWTRotationOldTokenValidWhileAlt(t *testing.T) {
	// Step 1 of a rotation: api_key=OLD, alt_api_key=NEW. Tokens signed with either key work.
	k1 := newAuthKeys(ServiceConfig{APIKey: strp("OLD"), AltAPIKey: strp("NEW"), JWTRBAC: boolp(true)})
	// Step 2: api_key=NEW only. OLD tokens now fail with InvalidSignature.
	k2 := newAuthKeys(ServiceConfig{APIKey: strp("NEW"), JWTRBAC: boolp(true)})
	old := sign(t, "OLD", jwt.MapClaims{"access": "r"})
	if _, err := k1.validate(hdr("api-key", old), time.Now()); err != nil {
		t.Fatalf("step 1: %+v", err)
	}
	if _, err := k2.validate(hdr("api-key", old), time.Now()); err == nil || err.status != 403 || err.msg != "InvalidSignature" {
		t.Fatalf("step 2: %+v", err)
	}
}

func replaceSignature(token, sig string) string {
	return token[:strings.LastIndex(token, ".")+1] + sig
}

// TestJWTTwoParsersQuirk: Qdrant runs one parser per read-write key and reports the first error if none succeeds. A
// token signed with api_key whose claims do not decode is "not a JWT" for that parser but a signature failure for
// the alt_api_key parser, so the answer is 403 InvalidSignature rather than 401.
func TestJWTTwoParsersQuirk(t *testing.T) {
	k := newAuthKeys(ServiceConfig{APIKey: strp("one"), AltAPIKey: strp("two"), JWTRBAC: boolp(true)})
	tok := sign(t, "one", jwt.MapClaims{"access": "x"})
	if _, err := k.validate(hdr("api-key", tok), time.Now()); err == nil || err.status != 403 || err.msg != "InvalidSignature" {
		t.Fatalf("got %+v", err)
	}
	// A semantic validation failure (401) from the signing key's parser comes first and wins.
	dup := sign(t, "two", jwt.MapClaims{"access": []any{map[string]any{"collection": "c", "access": "r"},
		map[string]any{"collection": "c", "access": "r"}}})
	if _, err := k.validate(hdr("api-key", dup), time.Now()); err == nil || err.status != 403 {
		t.Fatalf("alt-signed duplicate: got %+v (api_key parser's InvalidSignature comes first)", err)
	}
}
