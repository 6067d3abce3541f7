package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qdrantrotator/rotator/rotation"
)

// TestNamedKeysAgainstTheStandin: named keys are published at their own paths; against stand-in nodes the
// collection-scoped key reads and writes its collection and gets 403 on another, the read-only key gets 403 on
// writes, the full-access key is the admin key; after the rotation a JWT signed with the old key is refused.
func TestNamedKeysAgainstTheStandin(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", extra: `    keys:
      admin:      {read: true, write: true}
      search-api: {read: true, write: false}
      products:   {read: true, write: true, collections: [products]}
    key_ttl: 2h
`})
	for _, name := range f.names {
		for _, c := range []string{"products", "other"} {
			if s := f.call(http.MethodPut, f.url(name)+"/collections/"+c, f.k1.Reveal(), `{"vectors":{"size":2,"distance":"Dot"}}`); s != 200 {
				t.Fatalf("create %s on %s: HTTP %d", c, name, s)
			}
		}
	}
	oldJWT, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"access": "r"}).SignedString([]byte(f.k1.Reveal()))
	if err != nil {
		t.Fatal(err)
	}
	code, out := f.rotator("rotate")
	if code != exitOK {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	read := func(slot rotation.Slot) rotation.KeyRecord {
		rec, err := f.store.ReadCurrent(context.Background(), deployment, slot)
		if err != nil {
			t.Fatalf("%s: %v", slot, err)
		}
		return rec
	}
	admin, search, products := read("keys/admin"), read("keys/search-api"), read("keys/products")
	if !admin.Key.Equal(f.current().Key) || admin.Kind != rotation.CredentialKey {
		t.Errorf("keys/admin is not the current admin key")
	}
	if search.Kind != rotation.CredentialJWT || products.Kind != rotation.CredentialJWT {
		t.Errorf("kinds: search-api %s, products %s; want jwt", search.Kind, products.Kind)
	}
	point := `{"points":[{"id":1,"vector":[0.5,0.5]}]}`
	for _, name := range f.names {
		u := f.url(name)
		checks := []struct {
			what, method, path, key, body string
			want                          int
		}{
			{"products key writes products", http.MethodPut, "/collections/products/points?wait=true", products.Key.Reveal(), point, 200},
			{"products key reads products", http.MethodPost, "/collections/products/points/count", products.Key.Reveal(), `{"exact":true}`, 200},
			{"products key on another collection", http.MethodGet, "/collections/other", products.Key.Reveal(), "", 403},
			{"products key writes another collection", http.MethodPut, "/collections/other/points?wait=true", products.Key.Reveal(), point, 403},
			{"read-only key reads", http.MethodGet, "/collections/other", search.Key.Reveal(), "", 200},
			{"read-only key writes", http.MethodPut, "/collections/other/points?wait=true", search.Key.Reveal(), point, 403},
			{"admin key writes", http.MethodPut, "/collections/other/points?wait=true", admin.Key.Reveal(), point, 200},
		}
		for _, c := range checks {
			if s := f.call(c.method, u+c.path, c.key, c.body); s != c.want {
				t.Errorf("%s: %s on %s: HTTP %d, want %d", name, c.what, c.path, s, c.want)
			}
		}
		if s := f.call(http.MethodGet, u+"/collections", oldJWT, ""); s != 401 && s != 403 {
			t.Errorf("%s: a JWT signed with the old key gets HTTP %d, want it refused", name, s)
		}
	}
	f.assertNoLeak(f.current().Key, search.Key, products.Key)
}

// TestGraceShorterThanLagIsRefused: the config says how long consumers take; a grace below it is refused before
// anything is touched, with a message saying by how much.
func TestGraceShorterThanLagIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rotator.yml")
	cfg := "deployments:\n  - name: prod\n    mode: env\n    containers: [a]\n    grace: 45s\n    consumers:\n      vault-agent: {render_interval: 60s, reload: 10s}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"rotate", "status"} {
		var out, errOut strings.Builder
		code := run(context.Background(), []string{cmd, "--config", path}, func(string) string { return "" }, &out, &errOut)
		want := "grace: 45s is shorter than the largest consumer lag, 1m10s of consumer vault-agent (render_interval 1m0s + reload 10s), by 25s"
		if code != exitUsage || !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", cmd, code, errOut.String(), exitUsage, want)
		}
	}
}
