package standin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// FuzzJWTRoundTrip mints named keys the way a rotation does (rotation.Rotator.RemintKeys, whose proof step probes a
// node that is the stand-in's own authentication) and reads each JWT back with the stand-in's parser (Qdrant's
// AuthKeys::validate_request and rbac::Access). Fuzzed: the admin key, the collections (separated by commas; as the
// config allows them: valid UTF-8, non-empty, each once), write, the lifetime, and when the token is used. The
// stand-in must accept the token exactly as the claims say:
//   - signed with the admin key in api_key or in alt_api_key, until exp plus Qdrant's 30 s leeway, and no later
//     (403 ExpiredSignature);
//   - with the access minted: global read-only without collections (no write, no manage), otherwise those
//     collections only, each readable, writable exactly when write is set, and never managed;
//   - refused (403 InvalidSignature) by a node whose keys are another key.
func FuzzJWTRoundTrip(f *testing.F) {
	f.Add("admin-key-0123456789abcdef0123456789abcdef", "", false, uint32(3600), int64(0))
	f.Add("admin-key-0123456789abcdef0123456789abcdef", "products", true, uint32(60), int64(90))
	f.Add("admin-key-0123456789abcdef0123456789abcdef", "products", true, uint32(60), int64(91))
	f.Add("k", "a,b,a,,c d,ü,\u2028,<&>", false, uint32(1), int64(-5))
	f.Add("\x00\xff", `"quoted",back\slash`, true, uint32(4294967295), int64(1<<40))
	f.Fuzz(func(t *testing.T, adminKey, collections string, write bool, ttl uint32, after int64) {
		if adminKey == "" || ttl == 0 {
			return // a key is never empty; New refuses a JWT without a lifetime
		}
		var colls []string
		for _, c := range strings.Split(collections, ",") {
			if c != "" && utf8.ValidString(c) && !slices.Contains(colls, c) {
				colls = append(colls, c)
			}
		}
		roundTrip(t, adminKey, rotation.NamedKey{Name: "fuzzed", Write: write, Collections: colls, TTL: time.Duration(ttl) * time.Second}, after)
	})
}

// mintedAt is when the fuzzed keys are minted: a fixed instant, not the clock.
var mintedAt = time.Unix(1_800_000_000, 0)

func roundTrip(t *testing.T, adminKey string, k rotation.NamedKey, after int64) {
	admin, err := rotation.ParseKey(adminKey)
	if err != nil {
		t.Fatal(err)
	}
	node := &standinNode{keys: newAuthKeys(ServiceConfig{APIKey: strp(adminKey), JWTRBAC: boolp(true)})}
	store := rotationtest.NewStore()
	fp, err := rotation.NewFingerprinter([]byte("fingerprint-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	rot, err := rotation.New(store, []rotation.Node{node}, rotation.Options{Deployment: "prod", Keys: []rotation.NamedKey{k},
		Fingerprints: fp, ReadyTimeout: time.Second, Clock: fixedClock{mintedAt}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rot.RemintKeys(context.Background(), admin, "rot-1"); err != nil || n != 1 {
		t.Fatalf("RemintKeys = %d, %v; the stand-in refused the sample JWT or the key was not published", n, err)
	}
	rec, err := store.ReadCurrent(context.Background(), "prod", k.Slot())
	if err != nil || rec.Kind != rotation.CredentialJWT {
		t.Fatalf("published %+v, %v; want a JWT at %s", rec, err, k.Slot())
	}
	token := rec.Key.Reveal()
	exp := mintedAt.Add(k.TTL).Unix()

	if after > 1<<40 || after < -(1<<40) {
		after = 0 // beyond any lifetime the fuzzer gives, and beyond Unix seconds: judged at minting instead
	}
	at := time.Unix(mintedAt.Unix()+after, 0)
	a, aerr := node.keys.validate(bearer(token), at)
	if live := at.Unix() <= exp+jwtLeewaySeconds; !live {
		if aerr == nil || aerr.status != http.StatusForbidden || aerr.msg != "ExpiredSignature" {
			t.Fatalf("used %ds after minting, past exp %d + %ds: %v, want 403 ExpiredSignature", after, exp, jwtLeewaySeconds, aerr)
		}
	} else if aerr != nil {
		t.Fatalf("used %ds after minting, before exp %d + %ds: refused %d %s", after, exp, jwtLeewaySeconds, aerr.status, aerr.msg)
	} else {
		checkAccess(t, a, k)
	}
	if _, aerr := node.keys.validate(bearer(token), time.Unix(exp+jwtLeewaySeconds, 0)); aerr != nil {
		t.Fatalf("refused at the last second of its leeway: %d %s", aerr.status, aerr.msg)
	}
	if _, aerr := node.keys.validate(bearer(token), time.Unix(exp+jwtLeewaySeconds+1, 0)); aerr == nil || aerr.msg != "ExpiredSignature" {
		t.Fatalf("accepted, or refused for another reason, a second after its leeway: %v", aerr)
	}
	staged := newAuthKeys(ServiceConfig{APIKey: strp(adminKey + "-next"), AltAPIKey: strp(adminKey), JWTRBAC: boolp(true)})
	if _, aerr := staged.validate(bearer(token), mintedAt); aerr != nil {
		t.Fatalf("a node with the admin key in alt_api_key refuses the JWT: %d %s", aerr.status, aerr.msg)
	}
	other := newAuthKeys(ServiceConfig{APIKey: strp(adminKey + "-other"), JWTRBAC: boolp(true)})
	if _, aerr := other.validate(bearer(token), mintedAt); aerr == nil || aerr.status != http.StatusForbidden || aerr.msg != "InvalidSignature" {
		t.Fatalf("a node with another key: %v, want 403 InvalidSignature", aerr)
	}
}

// checkAccess compares what the stand-in grants with what the named key says.
func checkAccess(t *testing.T, a access, k rotation.NamedKey) {
	t.Helper()
	read, writeReq, manage := requirements{}, requirements{write: true}, requirements{manage: true}
	grants := func(err error) bool { return err == nil }
	if len(k.Collections) == 0 {
		if !grants(a.checkGlobal(read)) || grants(a.checkGlobal(writeReq)) || grants(a.checkGlobal(manage)) ||
			!grants(a.checkCollection("any", read)) || grants(a.checkCollection("any", writeReq)) {
			t.Fatalf("a key without collections must be global read-only; the stand-in grants %+v", a)
		}
		return
	}
	if grants(a.checkGlobal(read)) {
		t.Fatalf("a key of collections %q has global access: %+v", k.Collections, a)
	}
	for _, c := range k.Collections {
		if !grants(a.checkCollection(c, read)) || grants(a.checkCollection(c, writeReq)) != k.Write || grants(a.checkCollection(c, manage)) {
			t.Fatalf("collection %q (write %v): the stand-in grants %+v", c, k.Write, a)
		}
	}
	if outside := strings.Join(k.Collections, ",") + "-not-listed"; grants(a.checkCollection(outside, read)) {
		t.Fatalf("a collection not listed is readable: %+v", a)
	}
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// standinNode is a node whose authentication is the stand-in's (what it would answer over HTTP); nothing else is
// called when named keys are minted.
type standinNode struct {
	rotation.Node
	keys *authKeys
}

func (*standinNode) Name() string { return "q0" }
func (*standinNode) Diagnose(context.Context) rotation.Diagnosis {
	return rotation.Diagnosis{}
}
func (n *standinNode) Probe(_ context.Context, key rotation.Key) error {
	_, err := n.keys.validate(bearer(key.Reveal()), mintedAt)
	switch {
	case err == nil:
		return nil
	case err.status == http.StatusUnauthorized:
		return fmt.Errorf("%s: %w", err.msg, rotation.ErrUnauthorized)
	default:
		return fmt.Errorf("HTTP %d %s: %w", err.status, err.msg, rotation.ErrRejected)
	}
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }
func (c fixedClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.t
	return ch
}
