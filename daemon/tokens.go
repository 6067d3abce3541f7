package daemon

import (
	"context"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

type role int

const (
	roleNone role = iota
	roleRead
	roleAdmin
)

// TokenSource is one API token by reference: read from a file (anew as it changes), the environment, or Vault.
type TokenSource struct {
	Name  string
	Admin bool
	// Read returns the token's current value.
	Read func(context.Context) (string, error)
}

// FileToken reads a token from a file (trimmed), so it can be replaced without a restart.
func FileToken(path string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
}

// Tokens checks bearer tokens against every source in constant time; values are cached for a few seconds.
type Tokens struct {
	sources []TokenSource
	ttl     time.Duration

	mu      sync.Mutex
	values  []string
	fetched time.Time
}

// NewTokens returns a checker over sources, re-reading them at most every ttl.
func NewTokens(sources []TokenSource, ttl time.Duration) *Tokens {
	return &Tokens{sources: sources, ttl: ttl}
}

// Check returns the name and role of the token; roleNone when it matches none. Every source is compared, whatever
// matched, so the time taken does not tell which.
func (t *Tokens) Check(_ context.Context, token string) (string, role) {
	values := t.current()
	name, got := "", roleNone
	for i, s := range t.sources {
		if values[i] == "" {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(values[i]), []byte(token)) == 1 {
			r := roleRead
			if s.Admin {
				r = roleAdmin
			}
			if r > got {
				name, got = s.Name, r
			}
		}
	}
	return name, got
}

// current returns the tokens' values, re-read at most every ttl with a context of its own (a client that hangs up
// cannot cancel it) and a bound; a source that fails to read keeps its last value.
func (t *Tokens) current() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.values != nil && time.Since(t.fetched) < t.ttl {
		return t.values
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	values := make([]string, len(t.sources))
	for i, s := range t.sources {
		v, err := s.Read(ctx)
		switch {
		case err == nil:
			values[i] = v
		case t.values != nil:
			values[i] = t.values[i]
		}
	}
	t.values, t.fetched = values, time.Now()
	return values
}
