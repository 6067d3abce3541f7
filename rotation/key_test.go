package rotation_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

func TestNewKeyShape(t *testing.T) {
	seen := map[string]bool{}
	shape := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	for i := 0; i < 200; i++ {
		k, err := rotation.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(k.Reveal()) {
			t.Fatalf("minted key %d has the wrong shape (len %d)", i, len(k.Reveal()))
		}
		if seen[k.Reveal()] {
			t.Fatalf("minted key %d repeats an earlier one", i)
		}
		seen[k.Reveal()] = true
	}
}

func TestKeyNeverPrints(t *testing.T) {
	k, err := rotation.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := k.Reveal()
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("minted", "key", k, "ptr", &k)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("minted", "key", k)
	js, _ := json.Marshal(map[string]any{"k": k, "s": struct{ K rotation.Key }{k}})
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", k),
		"%+v":  fmt.Sprintf("%+v", struct{ K rotation.Key }{k}),
		"%#v":  fmt.Sprintf("%#v", k),
		"%s":   fmt.Sprintf("%s", k),
		"%q":   fmt.Sprintf("%q", k),
		"%x":   fmt.Sprintf("%x", k),
		"ptr":  fmt.Sprintf("%v", &k),
		"err":  fmt.Errorf("wrap %v", k).Error(),
		"json": strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(string(js)),
		"slog": logs.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("%s output shows the key", name)
		}
		if !strings.Contains(out, "<secret>") {
			t.Errorf("%s output = %q, want %q in it", name, out, "<secret>")
		}
	}
}

func TestParseKey(t *testing.T) {
	if _, err := rotation.ParseKey(""); err != rotation.ErrEmptyKey {
		t.Errorf("ParseKey(\"\") error = %v, want ErrEmptyKey", err)
	}
	k, err := rotation.ParseKey("existing.key-1")
	if err != nil || k.Reveal() != "existing.key-1" {
		t.Errorf("ParseKey kept a different value, %v", err)
	}
	if !k.Equal(mustParse(t, "existing.key-1")) || k.Equal(mustParse(t, "other")) {
		t.Error("Equal compares wrongly")
	}
}

func TestFingerprinter(t *testing.T) {
	if _, err := rotation.NewFingerprinter([]byte("short")); err == nil {
		t.Error("a 5-byte fingerprint secret was accepted")
	}
	f1, _ := rotation.NewFingerprinter([]byte("0123456789abcdef"))
	f2, _ := rotation.NewFingerprinter([]byte("fedcba9876543210"))
	a, _ := rotation.ParseKey("key-a")
	b, _ := rotation.ParseKey("key-b")
	if f1.Of(a) != f1.Of(a) {
		t.Error("fingerprint is not stable")
	}
	if f1.Of(a) == f1.Of(b) {
		t.Error("two keys share a fingerprint")
	}
	if f1.Of(a) == f2.Of(a) {
		t.Error("the fingerprint does not depend on the fingerprint secret")
	}
	if !regexp.MustCompile(`^fp:[0-9a-f]{16}$`).MatchString(f1.Of(a)) {
		t.Errorf("fingerprint %q has the wrong shape", f1.Of(a))
	}
	if f1.Of(rotation.Key{}) != "" {
		t.Error("an unset key has a fingerprint")
	}
}

func mustParse(t *testing.T, s string) rotation.Key {
	t.Helper()
	k, err := rotation.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
