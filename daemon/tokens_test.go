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
// most that long); after it, they are read again.
func TestTokensCacheWithinTTL(t *testing.T) {
	reads := 0
	tokens := NewTokens([]TokenSource{{Name: "ops", Admin: true, Read: func(context.Context) (string, error) {
		reads++
		if reads > 1 {
			return "", errors.New("gone")
		}
		return "t1", nil
	}}}, 50*time.Millisecond, nil)
	if _, r := tokens.Check(context.Background(), "t1"); r != roleAdmin {
		t.Fatal("t1 refused")
	}
	time.Sleep(60 * time.Millisecond)
	if _, r := tokens.Check(context.Background(), "t1"); r != roleNone {
		t.Error("t1 still valid after its source failed and the interval passed")
	}
}
