package rotation

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// keyBytes is the entropy of a minted key: 256 bits.
const keyBytes = 32

// redacted is what a Key shows wherever it could be printed.
const redacted = "<secret>"

// Key is an API key. It cannot print itself: fmt verbs, JSON, text marshalling and slog all show "<secret>".
// Reveal is the one way to the value, for the few places that must hand it to Vault or a node.
type Key struct {
	v string
}

// NewKey mints a key of 256 bits from crypto/rand, encoded as unpadded base64url: 43 characters from
// [A-Za-z0-9_-], safe in HTTP headers, gRPC metadata, env files and YAML without quoting.
func NewKey() (Key, error) {
	b := make([]byte, keyBytes)
	if _, err := rand.Read(b); err != nil {
		return Key{}, fmt.Errorf("mint key: %w", err)
	}
	return Key{v: base64.RawURLEncoding.EncodeToString(b)}, nil
}

// ErrEmptyKey is returned by ParseKey for an empty value.
var ErrEmptyKey = errors.New("empty key")

// ParseKey wraps an existing key (read from Vault or from a node's configuration). Qdrant treats an empty key as
// unset, so an empty value is refused; other characters are accepted as they are, since keys made elsewhere may use them.
func ParseKey(s string) (Key, error) {
	if s == "" {
		return Key{}, ErrEmptyKey
	}
	return Key{v: s}, nil
}

// Reveal returns the key's value.
func (k Key) Reveal() string { return k.v }

// IsZero says whether the key is unset.
func (k Key) IsZero() bool { return k.v == "" }

// Equal compares two keys.
func (k Key) Equal(o Key) bool { return hmac.Equal([]byte(k.v), []byte(o.v)) }

func (Key) String() string               { return redacted }
func (Key) GoString() string             { return redacted }
func (Key) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Key) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Key) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Key) MarshalYAML() (any, error)    { return redacted, nil }
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// Fingerprinter names keys by a keyed fingerprint (HMAC-SHA256 under a secret of its own), so logs and reports can
// tell keys apart without showing anything from which a key could be recovered or checked by guessing.
type Fingerprinter struct {
	secret []byte
}

// NewFingerprinter returns a Fingerprinter keyed with secret, which must hold at least 16 bytes.
func NewFingerprinter(secret []byte) (Fingerprinter, error) {
	if len(secret) < 16 {
		return Fingerprinter{}, fmt.Errorf("fingerprint secret: %d bytes, need at least 16", len(secret))
	}
	return Fingerprinter{secret: append([]byte(nil), secret...)}, nil
}

// Of returns the fingerprint of k: "fp:" and 16 hex characters; the empty string for an unset key.
// Tag is a keyed tag for a label (never a key): the same in every process keyed with the same secret, and not
// guessable without it. The rotator marks its own requests to nodes with one, so its audit-log watch can leave them
// out while a client cannot hide behind the mark.
func (f Fingerprinter) Tag(label string) string {
	m := hmac.New(sha256.New, f.secret)
	m.Write([]byte("tag:" + label))
	return hex.EncodeToString(m.Sum(nil)[:12])
}

func (f Fingerprinter) Of(k Key) string {
	if k.IsZero() {
		return ""
	}
	m := hmac.New(sha256.New, f.secret)
	m.Write([]byte(k.v))
	return "fp:" + hex.EncodeToString(m.Sum(nil)[:8])
}
