package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTokensFailClosed: a token whose source disappears (file deleted or emptied, variable unset, secret deleted)
// stops working at the next re-read; it works again once its source is back. No token value is logged.
func TestTokensFailClosed(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ops.token")
	if err := os.WriteFile(file, []byte("file-token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"READ_TOKEN": "env-token-1"}
	vaultSecret := "vault-token-1"
	var logs bytes.Buffer
	tokens := NewTokens([]TokenSource{
		{Name: "ops", Admin: true, Read: FileToken(file)},
		{Name: "grafana", Read: EnvToken("READ_TOKEN", func(k string) string { return env[k] })},
		{Name: "ci", Admin: true, Read: func(context.Context) (string, error) {
			if vaultSecret == "" {
				return "", errors.New("vault: read secret/qdrant/rotator/api-tokens/ci: not found")
			}
			return vaultSecret, nil
		}},
	}, 0, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	check := func(token string, want role) {
		t.Helper()
		if _, got := tokens.Check(ctx, token); got != want {
			t.Errorf("token %s: role %d, want %d", token, got, want)
		}
	}
	check("file-token-1", roleAdmin)
	check("env-token-1", roleRead)
	check("vault-token-1", roleAdmin)

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	delete(env, "READ_TOKEN")
	vaultSecret = ""
	check("file-token-1", roleNone)
	check("env-token-1", roleNone)
	check("vault-token-1", roleNone)
	check("", roleNone)

	if err := os.WriteFile(file, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("file-token-1", roleNone)
	check("", roleNone)

	if err := os.WriteFile(file, []byte("file-token-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env["READ_TOKEN"] = "env-token-2"
	check("file-token-1", roleNone)
	check("file-token-2", roleAdmin)
	check("env-token-2", roleRead)
	for _, v := range []string{"file-token-1", "file-token-2", "env-token-1", "env-token-2", "vault-token-1"} {
		if strings.Contains(logs.String(), v) {
			t.Errorf("the log holds token %s:\n%s", v, logs.String())
		}
	}
	if !strings.Contains(logs.String(), `token=ops`) || !strings.Contains(logs.String(), "READ_TOKEN is unset or empty") {
		t.Errorf("the log does not say which sources failed:\n%s", logs.String())
	}
}

// TestTokensCacheWithinTTL: within the re-read interval the cached values stand (a deleted file keeps working at
// most that long); after it, they are read again. The interval is judged on the checker's clock, set here.
func TestTokensCacheWithinTTL(t *testing.T) {
	reads := 0
	tokens := NewTokens([]TokenSource{{Name: "ops", Admin: true, Read: func(context.Context) (string, error) {
		reads++
		if reads > 1 {
			return "", errors.New("gone")
		}
		return "t1", nil
	}}}, 50*time.Millisecond, nil)
	now := time.Unix(1_800_000_000, 0)
	tokens.now = func() time.Time { return now }
	if _, r := tokens.Check(context.Background(), "t1"); r != roleAdmin {
		t.Fatal("t1 refused")
	}
	now = now.Add(49 * time.Millisecond)
	if _, r := tokens.Check(context.Background(), "t1"); r != roleAdmin || reads != 1 {
		t.Errorf("within the interval: role %d after %d reads; want the cached admin token, read once", r, reads)
	}
	now = now.Add(time.Millisecond)
	if _, r := tokens.Check(context.Background(), "t1"); r != roleNone {
		t.Error("t1 still valid after its source failed and the interval passed")
	}
}

// TestTokensRoles: a token is matched exactly (no prefix, no longer value, no other case), by the highest role of
// every source holding it, and named by that source; a source that yields nothing never matches the empty token.
func TestTokensRoles(t *testing.T) {
	tokens := NewTokens([]TokenSource{
		{Name: "grafana", Read: func(context.Context) (string, error) { return "shared-token", nil }},
		{Name: "ops", Admin: true, Read: func(context.Context) (string, error) { return "shared-token", nil }},
		{Name: "ci", Read: func(context.Context) (string, error) { return "ci-token", nil }},
		{Name: "broken", Admin: true, Read: func(context.Context) (string, error) { return "", errors.New("unreadable") }},
		{Name: "empty", Admin: true, Read: func(context.Context) (string, error) { return "", nil }},
	}, time.Hour, nil)
	for token, want := range map[string]struct {
		name string
		role role
	}{
		"shared-token":  {"ops", roleAdmin},
		"ci-token":      {"ci", roleRead},
		"ci-toke":       {"", roleNone},
		"ci-token2":     {"", roleNone},
		"CI-TOKEN":      {"", roleNone},
		"ci-token\x00":  {"", roleNone},
		"":              {"", roleNone},
		" ci-token":     {"", roleNone},
		"unreadable":    {"", roleNone},
		"shared-token ": {"", roleNone},
	} {
		if name, got := tokens.Check(context.Background(), token); name != want.name || got != want.role {
			t.Errorf("Check(%q) = %q, %d; want %q, %d", token, name, got, want.name, want.role)
		}
	}
}

// TestFileTokenReadAnew: a token file is read at each re-read, trimmed, so replacing it takes effect without a
// restart; its error names the file, never a value.
func TestFileTokenReadAnew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ops.token")
	read := FileToken(path)
	if _, err := read(context.Background()); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a missing file: %v", err)
	}
	for _, content := range []string{"  tok-1\n", "tok-2\r\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if v, err := read(context.Background()); err != nil || v != strings.TrimSpace(content) {
			t.Errorf("file %q: %q, %v", content, v, err)
		}
	}
	env := map[string]string{"T": " v \n"}
	if v, err := EnvToken("T", func(k string) string { return env[k] })(context.Background()); err != nil || v != "v" {
		t.Errorf("EnvToken: %q, %v", v, err)
	}
}
