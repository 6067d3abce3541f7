package conformance

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwtGroup: JWT RBAC (qdrant.md §3.2 steps 4-5, §3.3, §5), on a node with api_key, alt_api_key,
// read_only_api_key and jwt_rbac: true.
func jwtGroup() group {
	return group{name: "jwt", start: startKeyed(true), cases: []testCase{
		{name: "signed_with_api_key_default_access_manage", spec: "§5 (secret = api_key; access default manage)", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, f.keys.api, map[string]any{"exp": expIn(time.Hour)})
			expectWrites(t, f.client, "JWT signed with api_key, no access claim", tok)
		}},
		{name: "signed_with_alt_api_key", spec: "§5 (two parsers, one per rw key)", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, f.keys.alt, map[string]any{"exp": expIn(time.Hour)})
			expectWrites(t, f.client, "JWT signed with alt_api_key", tok)
		}},
		{name: "in_api_key_header_and_as_bearer", spec: "§3.1 (JWT in either header)", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, f.keys.api, map[string]any{"exp": expIn(time.Hour), "access": "m"})
			expectStatus(t, "JWT in api-key header", f.client.do(t, "GET", "/collections", "", apiKey(tok)), http.StatusOK)
			expectStatus(t, "JWT as Bearer", f.client.do(t, "GET", "/collections", "", bearer(tok)), http.StatusOK)
			name := newName(t, "jwtbearer")
			expectResult(t, "create with JWT as Bearer", f.client.do(t, "PUT", "/collections/"+name, createBody, bearer(tok)), "true")
		}},
		{name: "without_exp_never_expires", spec: "§5 (exp optional)", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, f.keys.api, map[string]any{"access": "r"})
			expectReads(t, f.client, "JWT without exp", tok)
		}},
		{name: "wrong_secret_403_invalid_signature", spec: "§3.3", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, newKey(t), map[string]any{"exp": expIn(time.Hour)})
			expectPlain(t, "JWT with a wrong secret", f.client.do(t, "GET", "/collections", "", apiKey(tok)), http.StatusForbidden, msgInvalidSig)
			expectPlain(t, "JWT with a wrong secret as Bearer", f.client.do(t, "GET", "/collections", "", bearer(tok)), http.StatusForbidden, msgInvalidSig)
		}},
		{name: "read_only_key_cannot_sign", spec: "§5 (read_only_api_key is not a JWT secret)", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, f.keys.readOnly, map[string]any{"exp": expIn(time.Hour), "access": "r"})
			expectPlain(t, "JWT signed with read_only_api_key", f.client.do(t, "GET", "/collections", "", apiKey(tok)), http.StatusForbidden, msgInvalidSig)
		}},
		{name: "expired_beyond_leeway_403", spec: "§3.3, §5 (30 s leeway)", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, f.keys.api, map[string]any{"exp": expIn(-2 * time.Minute)})
			expectPlain(t, "JWT expired 2 minutes ago", f.client.do(t, "GET", "/collections", "", apiKey(tok)), http.StatusForbidden, msgExpired)
		}},
		{name: "expired_within_leeway_accepted", spec: "§5 (30 s leeway)", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, f.keys.api, map[string]any{"exp": expIn(-10 * time.Second)})
			expectReads(t, f.client, "JWT expired 10 s ago (within leeway)", tok)
		}},
		{name: "hs512_401", spec: "§5 (HS256 only), §3.3", run: func(t *testing.T, f *fixture) {
			tok := signJWT(t, jwt.SigningMethodHS512, f.keys.api, map[string]any{"exp": expIn(time.Hour)})
			expectRejected(t, f.client, "HS512 JWT signed with api_key", tok)
		}},
		{name: "malformed_jwt_401", spec: "§3.3 (malformed = not a JWT)", run: func(t *testing.T, f *fixture) {
			// The header segment is not base64 JSON, so decoding fails before any signature check.
			expectRejected(t, f.client, "malformed JWT", "aaa.bbb.ccc")
		}},
		{name: "access_r_reads_not_writes", spec: "§5 (access r), §3.3", run: func(t *testing.T, f *fixture) {
			name := newName(t, "jwtr")
			createCollection(t, f.client, f.keys.api, name)
			tok := hs256(t, f.keys.api, map[string]any{"exp": expIn(time.Hour), "access": "r"})
			expectReadOnly(t, f.client, `JWT access "r"`, tok)
			if n := countPoints(t, f.client, tok, name); n != 0 {
				t.Errorf(`JWT access "r" count: %d, want 0`, n)
			}
			r := f.client.do(t, "PUT", "/collections/"+name+"/points?wait=true", points(1), apiKey(tok))
			expectError(t, `JWT access "r" upsert`, r, http.StatusForbidden, msgGlobalManage, true)
		}},
		{name: "access_m_manages", spec: "§5 (access m)", run: func(t *testing.T, f *fixture) {
			tok := hs256(t, f.keys.api, map[string]any{"exp": expIn(time.Hour), "access": "m"})
			expectWrites(t, f.client, `JWT access "m"`, tok)
		}},
		{name: "collection_scoped_rw", spec: "§3.3 (collection-scoped JWT), §5", run: func(t *testing.T, f *fixture) {
			a, b := newName(t, "scopea"), newName(t, "scopeb")
			createCollection(t, f.client, f.keys.api, a)
			createCollection(t, f.client, f.keys.api, b)
			tok := hs256(t, f.keys.api, map[string]any{
				"exp":    expIn(time.Hour),
				"access": []any{map[string]any{"collection": a, "access": "rw"}},
			})
			upsertWait(t, f.client, tok, a, 2)
			if n := countPoints(t, f.client, tok, a); n != 2 {
				t.Errorf("scoped JWT count on its collection: %d, want 2", n)
			}
			r := f.client.do(t, "PUT", "/collections/"+b+"/points?wait=true", points(1), apiKey(tok))
			expectError(t, "scoped JWT upsert on another collection", r, http.StatusForbidden, "Forbidden: Access to collection "+b+" is required", true)
			r = f.client.do(t, "POST", "/collections/"+b+"/points/count", `{"exact":true}`, apiKey(tok))
			expectError(t, "scoped JWT count on another collection", r, http.StatusForbidden, "Forbidden: Access to collection "+b+" is required", true)
		}},
		{name: "collection_scoped_listing_filtered", spec: "§9 list (filtered by JWT scope)", run: func(t *testing.T, f *fixture) {
			a, b := newName(t, "lista"), newName(t, "listb")
			createCollection(t, f.client, f.keys.api, a)
			createCollection(t, f.client, f.keys.api, b)
			all := listCollections(t, f.client, apiKey(f.keys.api))
			if !slices.Contains(all, a) || !slices.Contains(all, b) {
				t.Errorf("api_key listing %v lacks %s or %s", all, a, b)
			}
			tok := hs256(t, f.keys.api, map[string]any{
				"exp":    expIn(time.Hour),
				"access": []any{map[string]any{"collection": a, "access": "rw"}},
			})
			if got := listCollections(t, f.client, bearer(tok)); !slices.Equal(got, []string{a}) {
				t.Errorf("scoped JWT listing %v, want only [%s]", got, a)
			}
		}},
		{name: "collection_scoped_r_cannot_write", spec: "§3.3 (JWT r on collection write)", run: func(t *testing.T, f *fixture) {
			a := newName(t, "scoper")
			createCollection(t, f.client, f.keys.api, a)
			tok := hs256(t, f.keys.api, map[string]any{
				"exp":    expIn(time.Hour),
				"access": []any{map[string]any{"collection": a, "access": "r"}},
			})
			if n := countPoints(t, f.client, tok, a); n != 0 {
				t.Errorf("read-scoped JWT count: %d, want 0", n)
			}
			r := f.client.do(t, "PUT", "/collections/"+a+"/points?wait=true", points(1), apiKey(tok))
			expectError(t, "read-scoped JWT upsert", r, http.StatusForbidden, "Forbidden: Write access to collection "+a+" is required", true)
		}},
		{name: "invalid_claims_401", spec: "§3.3 (claim validation => 401), §5", run: func(t *testing.T, f *fixture) {
			a := newName(t, "claims")
			for _, c := range []struct {
				what   string
				access []any
			}{
				{"duplicate collection", []any{
					map[string]any{"collection": a, "access": "r"},
					map[string]any{"collection": a, "access": "rw"},
				}},
				{"deprecated payload constraint", []any{
					map[string]any{"collection": a, "access": "r", "payload": map[string]any{"k": "v"}},
				}},
			} {
				tok := hs256(t, f.keys.api, map[string]any{"exp": expIn(time.Hour), "access": c.access})
				expectStatus(t, "JWT with "+c.what, f.client.do(t, "GET", "/collections", "", apiKey(tok)), http.StatusUnauthorized)
			}
		}},
	}}
}
