package vaultsync

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
)

// TestDevServerCheckAndSet holds the KV v2 check-and-set facts the rotator relies on (specs/vault.md §1.2, §1.3)
// against the real dev server, first through the Vault SDK directly, then through Store.
func TestDevServerCheckAndSet(t *testing.T) {
	srv := vaultdev.StartT(t)
	ctx := context.Background()

	cfg := api.DefaultConfig()
	cfg.Address = srv.Addr
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(srv.Token)
	kv := client.KVv2("secret")

	t.Run("sdk cas=0 creates", func(t *testing.T) {
		s, err := kv.Put(ctx, "cas/a", map[string]any{"v": "one"}, api.WithCheckAndSet(0))
		if err != nil {
			t.Fatal(err)
		}
		if s.VersionMetadata.Version != 1 {
			t.Errorf("version = %d, want 1", s.VersionMetadata.Version)
		}
	})
	t.Run("sdk cas=0 on an existing record is a 400 mismatch", func(t *testing.T) {
		_, err := kv.Put(ctx, "cas/a", map[string]any{"v": "two"}, api.WithCheckAndSet(0))
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
			t.Fatalf("error = %v, want a 400 ResponseError", err)
		}
		if !strings.Contains(strings.Join(re.Errors, ";"), "check-and-set parameter did not match the current version") {
			t.Errorf("errors = %q", re.Errors)
		}
	})
	t.Run("sdk cas=current writes and reads back", func(t *testing.T) {
		if _, err := kv.Put(ctx, "cas/a", map[string]any{"v": "two"}, api.WithCheckAndSet(1)); err != nil {
			t.Fatal(err)
		}
		s, err := kv.Get(ctx, "cas/a")
		if err != nil {
			t.Fatal(err)
		}
		if s.Data["v"] != "two" || s.VersionMetadata.Version != 2 {
			t.Errorf("read %v at version %d, want two at 2", s.Data["v"], s.VersionMetadata.Version)
		}
		old, err := kv.GetVersion(ctx, "cas/a", 1)
		if err != nil || old.Data["v"] != "one" {
			t.Errorf("version 1 = %v, %v; want one", old, err)
		}
	})
	t.Run("sdk deleted latest version reads without error and without data", func(t *testing.T) {
		if _, err := kv.Put(ctx, "cas/del", map[string]any{"v": "x"}, api.WithCheckAndSet(0)); err != nil {
			t.Fatal(err)
		}
		if err := kv.Delete(ctx, "cas/del"); err != nil {
			t.Fatal(err)
		}
		s, err := kv.Get(ctx, "cas/del")
		if err != nil {
			t.Fatalf("error = %v, want none", err)
		}
		if s.Data != nil {
			t.Error("deleted version still has data")
		}
		// Soft-deleted versions still count: cas=0 fails.
		if _, err := kv.Put(ctx, "cas/del", map[string]any{"v": "y"}, api.WithCheckAndSet(0)); err == nil {
			t.Error("cas=0 on a soft-deleted record succeeded")
		}
	})

	store, err := New(Options{Address: srv.Addr, Token: srv.Token, Mount: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("store put with cas 0 then get", func(t *testing.T) {
		v, err := store.Put(ctx, "store/a", map[string]string{"api_key": "k1", "fingerprint": "fp:1"}, 0)
		if err != nil || v != 1 {
			t.Fatalf("Put = %d, %v; want 1, nil", v, err)
		}
		got, ver, err := store.Get(ctx, "store/a")
		if err != nil || ver != 1 || got["api_key"] != "k1" || got["fingerprint"] != "fp:1" {
			t.Fatalf("Get = %v, %d, %v", got, ver, err)
		}
	})
	t.Run("store stale cas is ErrConflict", func(t *testing.T) {
		if _, err := store.Put(ctx, "store/a", map[string]string{"api_key": "k2"}, 0); !errors.Is(err, rotation.ErrConflict) {
			t.Fatalf("error = %v, want ErrConflict", err)
		}
		if v, err := store.Put(ctx, "store/a", map[string]string{"api_key": "k2"}, 1); err != nil || v != 2 {
			t.Fatalf("Put at cas 1 = %d, %v; want 2, nil", v, err)
		}
	})
	t.Run("store missing and deleted are ErrNotFound", func(t *testing.T) {
		if _, _, err := store.Get(ctx, "store/missing"); !errors.Is(err, rotation.ErrNotFound) {
			t.Errorf("missing: error = %v, want ErrNotFound", err)
		}
		if _, _, err := store.Get(ctx, "cas/del"); !errors.Is(err, rotation.ErrNotFound) {
			t.Errorf("deleted: error = %v, want ErrNotFound", err)
		}
	})
	t.Run("store errors do not carry the written value", func(t *testing.T) {
		bad, err := New(Options{Address: srv.Addr, Token: "wrong-token", Mount: "secret"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.Put(ctx, "store/b", map[string]string{"api_key": "very-secret-value-123"}, 0)
		if err == nil {
			t.Fatal("a write with a wrong token succeeded")
		}
		if !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "very-secret-value-123") {
			t.Errorf("error = %q, want a 403 without the value", err)
		}
	})
}
