package standin

import (
	"crypto/subtle"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// Auth failure texts of Qdrant's REST middleware (plain text bodies).
const (
	msgNoCredential = "Must provide an API key or an Authorization bearer token"
	msgInvalidKey   = "Invalid API key or JWT"
)

// authKeys is Qdrant's AuthKeys: the configured keys and the JWT secrets. A nil *authKeys means no authentication.
type authKeys struct {
	readWrite    []byte
	altReadWrite []byte
	readOnly     []byte
	jwtSecrets   [][]byte // api_key then alt_api_key, only when jwt_rbac is on
}

// newAuthKeys is AuthKeys::try_create: empty keys are unset; with no key at all there is no authentication.
func newAuthKeys(s ServiceConfig) *authKeys {
	rw, hasRW := nonEmpty(s.APIKey)
	alt, hasAlt := nonEmpty(s.AltAPIKey)
	ro, hasRO := nonEmpty(s.ReadOnlyAPIKey)
	if !hasRW && !hasAlt && !hasRO {
		return nil
	}
	k := &authKeys{}
	if hasRW {
		k.readWrite = []byte(rw)
	}
	if hasAlt {
		k.altReadWrite = []byte(alt)
	}
	if hasRO {
		k.readOnly = []byte(ro)
	}
	if s.JWTRBAC != nil && *s.JWTRBAC {
		for _, sec := range [][]byte{k.readWrite, k.altReadWrite} {
			if sec != nil {
				k.jwtSecrets = append(k.jwtSecrets, sec)
			}
		}
	}
	return k
}

// authError is a failure of the auth middleware: a status and a plain-text body.
type authError struct {
	status int
	msg    string
}

// headerValue is actix's headers().get(name).to_str(): the first value, absent if it has bytes outside visible
// ASCII (tab allowed).
func headerValue(h http.Header, name string) (string, bool) {
	vals := h[textproto.CanonicalMIMEHeaderKey(name)]
	if len(vals) == 0 {
		return "", false
	}
	v := vals[0]
	for i := 0; i < len(v); i++ {
		if b := v[i]; b != '\t' && (b < 32 || b >= 127) {
			return "", false
		}
	}
	return v, true
}

// extractKey is AuthKeys::extract_key: the api-key header if present (even empty), otherwise the Authorization
// header with a case-sensitive "Bearer " prefix.
func extractKey(h http.Header) (string, bool) {
	if v, ok := headerValue(h, "api-key"); ok {
		return v, true
	}
	if v, ok := headerValue(h, "authorization"); ok {
		if key, found := strings.CutPrefix(v, "Bearer "); found {
			return key, true
		}
	}
	return "", false
}

func ctEq(a []byte, b string) bool {
	return a != nil && subtle.ConstantTimeCompare(a, []byte(b)) == 1
}

// Qdrant's AuthType names, as the audit log writes them.
const (
	authTypeAPIKey = "ApiKey"
	authTypeJWT    = "Jwt"
	authTypeNone   = "None"
)

// credential is what an accepted request authenticated as: its access, how it authenticated and the JWT's
// subject claim (audit log only).
type credential struct {
	access   access
	authType string
	subject  *string
}

// validate is AuthKeys::validate_request reduced to the access it grants.
func (k *authKeys) validate(h http.Header, now time.Time) (access, *authError) {
	c, err := k.authenticate(h, now)
	return c.access, err
}

// authenticate is AuthKeys::validate_request.
func (k *authKeys) authenticate(h http.Header, now time.Time) (credential, *authError) {
	key, ok := extractKey(h)
	if !ok {
		return credential{}, &authError{http.StatusUnauthorized, msgNoCredential}
	}
	// Both read-write keys are compared (no short circuit), then the read-only key.
	rw := ctEq(k.readWrite, key)
	alt := ctEq(k.altReadWrite, key)
	if rw || alt {
		return credential{access: fullAccess(), authType: authTypeAPIKey}, nil
	}
	if ctEq(k.readOnly, key) {
		return credential{access: readOnlyAccess(), authType: authTypeAPIKey}, nil
	}
	var firstErr *authError
	for _, sec := range k.jwtSecrets {
		r := decodeJWT(key, sec, now)
		switch r.kind {
		case jwtValid:
			return credential{access: r.access, authType: authTypeJWT, subject: r.subject}, nil
		case jwtRejected:
			if firstErr == nil {
				firstErr = &authError{r.status, r.msg}
			}
		}
	}
	if firstErr != nil {
		return credential{}, firstErr
	}
	return credential{}, &authError{http.StatusUnauthorized, msgInvalidKey}
}

// auditText is the AuthError as the audit log writes it: "Unauthorized: <msg>" or "Forbidden: <msg>".
func (e *authError) auditText() string {
	if e.status == http.StatusForbidden {
		return "Forbidden: " + e.msg
	}
	return "Unauthorized: " + e.msg
}
