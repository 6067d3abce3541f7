package standin

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// jwtLeewaySeconds is Qdrant's Validation::leeway for exp.
const jwtLeewaySeconds = 30

type jwtKind int

const (
	// jwtNotToken: the value does not look like a JWT for this parser (Qdrant's JwtParser::decode returns None).
	jwtNotToken jwtKind = iota
	jwtValid
	jwtRejected
)

// jwtResult is the outcome of decoding a token with one secret.
type jwtResult struct {
	kind    jwtKind
	access  access
	subject *string // for jwtValid: the "subject" claim (audit log only)
	status  int     // for jwtRejected
	msg     string  // for jwtRejected
}

// decodeJWT follows Qdrant's JwtParser::decode over jsonwebtoken's decode, step by step:
//  1. split (signature after the last dot, header before the next one), decode the header; alg must be HS256,
//     anything else (other algorithm, malformed header) means "not a JWT";
//  2. base64url-decode the signature (failure: not a JWT) and verify HMAC-SHA256 with the secret
//     (mismatch: 403 InvalidSignature);
//  3. decode the claims JSON (failure, including wrong claim types: not a JWT);
//  4. exp (seconds, optional) plus 30 s leeway in the past: 403 ExpiredSignature; nbf, iss, aud are not checked;
//  5. semantic validation of the access list: 401 with the validator message.
//
// golang-jwt provides the base64url codec and the HMAC check; jwt.Parse is not used because it decodes the claims
// before checking the signature and has different claim rules.
func decodeJWT(token string, secret []byte, now time.Time) jwtResult {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return jwtResult{kind: jwtNotToken}
	}
	parser := jwt.NewParser(jwt.WithStrictDecoding())
	headerJSON, err := parser.DecodeSegment(parts[0])
	if err != nil || !validHeader(headerJSON) {
		return jwtResult{kind: jwtNotToken}
	}
	sig, err := parser.DecodeSegment(parts[2])
	if err != nil {
		return jwtResult{kind: jwtNotToken}
	}
	if err := jwt.SigningMethodHS256.Verify(parts[0]+"."+parts[1], sig, secret); err != nil {
		return jwtResult{kind: jwtRejected, status: http.StatusForbidden, msg: "InvalidSignature"}
	}
	payload, err := parser.DecodeSegment(parts[1])
	if err != nil {
		return jwtResult{kind: jwtNotToken}
	}
	claims, ok := parseClaims(payload)
	if !ok {
		return jwtResult{kind: jwtNotToken}
	}
	if claims.exp != nil && *claims.exp <= math.MaxUint64-jwtLeewaySeconds {
		if n := now.Unix(); n > 0 && *claims.exp+jwtLeewaySeconds < uint64(n) {
			return jwtResult{kind: jwtRejected, status: http.StatusForbidden, msg: "ExpiredSignature"}
		}
	}
	if msg := claims.validationError(); msg != "" {
		return jwtResult{kind: jwtRejected, status: http.StatusUnauthorized, msg: msg}
	}
	return jwtResult{kind: jwtValid, access: claims.access, subject: claims.subject}
}

// validHeader checks a decoded JOSE header like jsonwebtoken's Header: a JSON object whose alg is HS256 (other
// known algorithms fail the algorithm check, unknown ones fail to parse; both mean "not a JWT") and whose optional
// string fields have string values.
func validHeader(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(b, &h); err != nil || h == nil {
		return false
	}
	var alg string
	if err := json.Unmarshal(h["alg"], &alg); err != nil || alg != "HS256" {
		return false
	}
	for _, k := range []string{"typ", "cty", "jku", "kid", "x5u", "x5t", "x5t#S256"} {
		if raw, ok := h[k]; ok && !isNullOr(raw, '"') {
			return false
		}
	}
	if raw, ok := h["x5c"]; ok && !isNull(raw) {
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return false
		}
	}
	return true
}

type claims struct {
	exp     *uint64
	access  access
	subject *string
	// list entries as written, for validation
	entries []claimEntry
}

type claimEntry struct {
	name       string
	hasPayload bool
}

// parseClaims decodes Qdrant's Claims with serde's rules: sub and subject optional strings (subject is kept for the
// audit log), exp an optional u64,
// access optional (absent = global manage), "r" | "m" | a list of {"collection","access":"r"|"rw"|"prw"}.
// value_exists is accepted and ignored. Unknown fields are ignored.
func parseClaims(b []byte) (*claims, bool) {
	if !utf8.Valid(b) {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, false
	}
	c := &claims{access: fullAccess()}
	for _, k := range []string{"sub", "subject"} {
		if raw, ok := m[k]; ok && !isNullOr(raw, '"') {
			return nil, false
		}
	}
	if raw, ok := m["subject"]; ok && !isNull(raw) {
		var sub string
		if err := json.Unmarshal(raw, &sub); err != nil {
			return nil, false
		}
		c.subject = &sub
	}
	if raw, ok := m["exp"]; ok && !isNull(raw) {
		n, err := strconv.ParseUint(string(bytes.TrimSpace(raw)), 10, 64)
		if err != nil {
			return nil, false
		}
		c.exp = &n
	}
	if raw, ok := m["access"]; ok {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil && !isNull(raw) {
			switch s {
			case "r":
				c.access = readOnlyAccess()
			case "m":
				c.access = fullAccess()
			default:
				return nil, false
			}
			return c, true
		}
		var list []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil || isNull(raw) {
			return nil, false
		}
		c.access = access{scoped: true}
		for _, item := range list {
			if item == nil {
				return nil, false
			}
			var name, mode string
			if err := json.Unmarshal(item["collection"], &name); err != nil || isNull(item["collection"]) {
				return nil, false
			}
			if err := json.Unmarshal(item["access"], &mode); err != nil || isNull(item["access"]) {
				return nil, false
			}
			ca := collAccess{name: name}
			switch mode {
			case "r":
				ca.mode = collRead
			case "rw":
				ca.mode = collReadWrite
			case "prw":
				ca.mode = collPointsWrite
			default:
				return nil, false
			}
			c.access.colls = append(c.access.colls, ca)
			p, has := item["payload"]
			c.entries = append(c.entries, claimEntry{name: name, hasPayload: has && !isNull(p)})
		}
	}
	return c, true
}

// validationError reproduces the validator message Qdrant returns (401) for the first invalid access entry.
func (c *claims) validationError() string {
	seen := map[string]bool{}
	for _, e := range c.entries {
		var msgs []string
		if seen[e.name] {
			msgs = append(msgs, "access.access.collection: Collection name should be unique")
		}
		seen[e.name] = true
		if e.hasPayload {
			msgs = append(msgs, "access.access.payload: The 'payload' constraint is deprecated and should not be used")
		}
		if len(msgs) > 0 {
			return strings.Join(msgs, "\n")
		}
	}
	return ""
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// isNullOr reports whether raw is null or starts with the given JSON token byte (e.g. '"' for a string).
func isNullOr(raw json.RawMessage, first byte) bool {
	t := bytes.TrimSpace(raw)
	return isNull(t) || (len(t) > 0 && t[0] == first)
}
