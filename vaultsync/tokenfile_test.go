package vaultsync

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/qdrantrotator/rotator/testbed/vaultdev"
)

// TestTokenFileIsReadAgainWhenTheTokenDies: the token in token_file is revoked and a new one written to the file
// (as a Vault Agent sink does); the store's session picks the new one up and works again, with no restart.
func TestTokenFileIsReadAgainWhenTheTokenDies(t *testing.T) {
	srv := vaultdev.StartT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root, err := api.NewClient(&api.Config{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(srv.Token)
	child := func(ttl string) string {
		sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{TTL: ttl, Policies: []string{"root"}})
		if err != nil {
			t.Fatal(err)
		}
		return sec.Auth.ClientToken
	}
	file := filepath.Join(t.TempDir(), "token")
	first := child("4s") // short: the session's watcher renews it (and notices its end) within seconds
	if err := os.WriteFile(file, []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := New(Options{Address: srv.Addr, TokenFile: file, TokenFileRecheck: 100 * time.Millisecond, Mount: "secret", Prefix: "qdrant"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Login(ctx); err != nil {
		t.Fatal(err)
	}
	go store.KeepLoggedIn(ctx, slog.New(slog.DiscardHandler))
	if _, _, err := store.ReadJournal(ctx, "prod"); err != nil {
		t.Fatalf("with the first token: %v", err)
	}
	if err := root.Auth().Token().RevokeTree(first); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(child("1h")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err := store.ReadJournal(ctx, "prod")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store never picked up the new token from token_file: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
