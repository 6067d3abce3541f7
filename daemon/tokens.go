package daemon

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
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
	// Read returns the token's current value; an error (the file, variable or secret is gone) means the source
	// grants nothing until it can be read again.
	Read func(context.Context) (string, error)
}

// FileToken reads a token from a file (trimmed), so it can be replaced without a restart.
func FileToken(path string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("token file %s is empty", path)
		}
		return v, nil
	}
}

// EnvToken reads a token from the environment variable name at each read (through env, os.Getenv in production).
func EnvToken(name string, env func(string) string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		v := strings.TrimSpace(env(name))
		if v == "" {
			return "", fmt.Errorf("environment variable %s is unset or empty", name)
		}
		return v, nil
	}
}

// Tokens checks bearer tokens against every source in constant time; values are cached for ttl at most, and a
// source that cannot be read grants nothing (fail closed): a token whose file, variable or Vault secret is gone
// stops working within ttl.
type Tokens struct {
	sources []TokenSource
	ttl     time.Duration
	logger  *slog.Logger
	now     func() time.Time // time.Now; tests set their own

	mu      sync.Mutex
	values  []string
	failing []bool // per source: its last read failed (logged once per change)
	fetched time.Time
}

// NewTokens returns a checker over sources, re-reading them at most every ttl.
func NewTokens(sources []TokenSource, ttl time.Duration, logger *slog.Logger) *Tokens {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Tokens{sources: sources, ttl: ttl, logger: logger, now: time.Now, failing: make([]bool, len(sources))}
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
// cannot cancel it) and a bound. A source that fails to read has no value: its old token is not kept.
func (t *Tokens) current() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.values != nil && t.now().Sub(t.fetched) < t.ttl {
		return t.values
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	values := make([]string, len(t.sources))
	for i, s := range t.sources {
		v, err := s.Read(ctx)
		if err == nil && v == "" {
			err = errors.New("empty token")
		}
		switch {
		case err != nil && !t.failing[i]:
			// The error names the file, variable or Vault path, never the value.
			t.logger.Warn("API token source cannot be read; its token is refused until it can", "token", s.Name, "error", err)
		case err == nil && t.failing[i]:
			t.logger.Info("API token source readable again", "token", s.Name)
		}
		t.failing[i] = err != nil
		if err == nil {
			values[i] = v
		}
	}
	t.values, t.fetched = values, t.now()
	return values
}
