package vaultsync

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
)

// TestStoreAgainstDevServer holds vaultsync's rotation.Store to the real dev server: the consumer record and its
// version labels, the journal round trip and its check-and-set, the fingerprint secret.
func TestStoreAgainstDevServer(t *testing.T) {
	srv := vaultdev.StartT(t)
	ctx := context.Background()
	store, err := New(Options{Address: srv.Addr, Token: srv.Token, Mount: "secret", Prefix: "qdrant", Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := rotation.NewKey()
	k2, _ := rotation.NewKey()
	t0 := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

	if _, err := store.ReadCurrent(ctx, "prod", rotation.SlotAdmin); !errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("empty store: %v, want ErrNotFound", err)
	}
	v1, err := store.Publish(ctx, "prod", rotation.SlotAdmin, rotation.KeyRecord{Key: k1, Fingerprint: "fp:1", Since: t0, RotationID: "adopted"}, 0)
	if err != nil || v1 != 1 {
		t.Fatalf("publish v1: %d, %v", v1, err)
	}
	if _, err := store.Publish(ctx, "prod", rotation.SlotAdmin, rotation.KeyRecord{Key: k2, Since: t0}, 0); !errors.Is(err, rotation.ErrConflict) {
		t.Fatalf("stale publish: %v, want ErrConflict", err)
	}
	v2, err := store.Publish(ctx, "prod", rotation.SlotAdmin, rotation.KeyRecord{Key: k2, Fingerprint: "fp:2", Since: t0.Add(time.Minute), RotationID: "r2"}, 1)
	if err != nil || v2 != 2 {
		t.Fatalf("publish v2: %d, %v", v2, err)
	}
	cur, err := store.ReadCurrent(ctx, "prod", rotation.SlotAdmin)
	if err != nil || !cur.Key.Equal(k2) || cur.Version != 2 || cur.RotationID != "r2" || cur.Kind != rotation.CredentialKey || !cur.Since.Equal(t0.Add(time.Minute)) || cur.Fingerprint != "fp:2" {
		t.Fatalf("current = %+v, %v", cur, err)
	}
	if err := store.Retire(ctx, "prod", rotation.SlotAdmin, 1, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}

	// What a consumer sees, through the SDK: the key at the documented path, labels in custom metadata.
	cfg := api.DefaultConfig()
	cfg.Address = srv.Addr
	client, _ := api.NewClient(cfg)
	client.SetToken(srv.Token)
	sec, err := client.KVv2("secret").Get(ctx, "qdrant/deployments/prod/admin")
	if err != nil || sec.Data["api_key"] != k2.Reveal() {
		t.Fatalf("consumer path does not hold the current key: %v", err)
	}
	meta, err := client.KVv2("secret").GetMetadata(ctx, "qdrant/deployments/prod/admin")
	if err != nil {
		t.Fatal(err)
	}
	if !meta.CASRequired {
		t.Error("cas_required is not set on the consumer record")
	}
	if got := meta.CustomMetadata["v1"]; got != "retired 2026-11-26T03:02:00Z" {
		t.Errorf("label of v1 = %v", got)
	}
	if got, _ := meta.CustomMetadata["v2"].(string); !strings.HasPrefix(got, "current ") {
		t.Errorf("label of v2 = %v", got)
	}
	old, err := client.KVv2("secret").GetVersion(ctx, "qdrant/deployments/prod/admin", 1)
	if err != nil || old.Data == nil {
		t.Errorf("retired version 1 is no longer readable within its retention: %v", err)
	}
	// Past the retention, the next retirement soft-deletes the retired version; the current one stays.
	k3, _ := rotation.NewKey()
	if _, err := store.Publish(ctx, "prod", rotation.SlotAdmin, rotation.KeyRecord{Key: k3, Since: t0.Add(3 * time.Hour), RotationID: "r3"}, 2); err != nil {
		t.Fatal(err)
	}
	if old, err = client.KVv2("secret").GetVersion(ctx, "qdrant/deployments/prod/admin", 1); err != nil || old.Data == nil {
		t.Errorf("a publish soft-deleted version 1 (err %v): the retention is applied when a version is retired", err)
	}
	if err := store.Retire(ctx, "prod", rotation.SlotAdmin, 2, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	old, err = client.KVv2("secret").GetVersion(ctx, "qdrant/deployments/prod/admin", 1)
	if err != nil || old.Data != nil {
		t.Errorf("version 1 should be soft-deleted past its retention (err %v)", err)
	}

	// Journal round trip with check-and-set.
	j0, jv, err := store.ReadJournal(ctx, "prod")
	if err != nil || jv != 0 || j0.Phase != "" {
		t.Fatalf("empty journal = %+v, %d, %v", j0, jv, err)
	}
	j := rotation.Journal{
		Owner: "me", LeaseUntil: t0.Add(time.Minute), RotationID: "r4", Kind: rotation.KindScheduled, Phase: rotation.PhaseStaging,
		Node: "qdrant-b", NodesDone: []string{"qdrant-a"}, PendingKey: k3, OldKey: k2, BaseVersion: 2,
		StartedAt: t0, UpdatedAt: t0.Add(time.Second), OpID: "op1",
		PendingReadOnly: k1, OldReadOnly: k2, ReadOnlyBase: 4, Bridge: k3,
	}
	jv, err = store.WriteJournal(ctx, "prod", j, 0)
	if err != nil || jv != 1 {
		t.Fatalf("write journal: %d, %v", jv, err)
	}
	if _, err := store.WriteJournal(ctx, "prod", j, 0); !errors.Is(err, rotation.ErrConflict) {
		t.Fatalf("stale journal write: %v, want ErrConflict", err)
	}
	got, gv, err := store.ReadJournal(ctx, "prod")
	if err != nil || gv != 1 {
		t.Fatal(err)
	}
	if got.Owner != j.Owner || !got.LeaseUntil.Equal(j.LeaseUntil) || got.Phase != j.Phase || got.Node != j.Node ||
		strings.Join(got.NodesDone, ",") != "qdrant-a" || !got.PendingKey.Equal(k3) || !got.OldKey.Equal(k2) ||
		got.BaseVersion != 2 || !got.StartedAt.Equal(t0) || got.OpID != "op1" || got.Kind != rotation.KindScheduled ||
		!got.PendingReadOnly.Equal(k1) || !got.OldReadOnly.Equal(k2) || got.ReadOnlyBase != 4 || !got.Bridge.Equal(k3) {
		t.Errorf("journal round trip lost fields: %+v", got)
	}

	// Fingerprint secret: created once, then the same for every reader.
	if _, err := store.FingerprintSecret(ctx, false); !errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("fingerprint secret without create: %v, want ErrNotFound", err)
	}
	s1, err := store.FingerprintSecret(ctx, true)
	if err != nil || len(s1) != 32 {
		t.Fatalf("fingerprint secret: %d bytes, %v", len(s1), err)
	}
	other, _ := New(Options{Address: srv.Addr, Token: srv.Token, Mount: "secret", Prefix: "qdrant"})
	s2, err := other.FingerprintSecret(ctx, false)
	if err != nil || string(s1) != string(s2) {
		t.Errorf("a second reader got another fingerprint secret (%v)", err)
	}
}

// A journal keeps one version: the versions written during a rotation (which hold its keys) are gone from Vault
// once later versions are written, and check-and-set still counts versions.
func TestJournalKeepsNoEarlierVersion(t *testing.T) {
	srv := vaultdev.StartT(t)
	ctx := context.Background()
	store, err := New(Options{Address: srv.Addr, Token: srv.Token, Mount: "secret", Prefix: "qdrant"})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := rotation.NewKey()
	v, err := store.WriteJournal(ctx, "prod", rotation.Journal{Phase: rotation.PhaseStaging, PendingKey: k, OldFingerprint: "fp:old"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v, err = store.WriteJournal(ctx, "prod", rotation.Journal{Phase: rotation.PhaseDone, OldFingerprint: "fp:old"}, v); err != nil {
		t.Fatal(err)
	}
	if _, err := store.WriteJournal(ctx, "prod", rotation.Journal{Phase: rotation.PhaseDone}, 1); !errors.Is(err, rotation.ErrConflict) {
		t.Fatalf("stale journal write: %v, want ErrConflict", err)
	}
	if v, err = store.WriteJournal(ctx, "prod", rotation.Journal{Phase: rotation.PhaseDone, OldFingerprint: "fp:old"}, v); err != nil || v != 3 {
		t.Fatalf("third write: version %d, %v", v, err)
	}
	raw, err := api.NewClient(&api.Config{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	raw.SetToken(srv.Token)
	for old := 1; old < v; old++ {
		sec, err := raw.KVv2("secret").GetVersion(ctx, store.journalPath("prod"), old)
		if err == nil && sec != nil && sec.Data != nil {
			t.Errorf("journal version %d is still readable: %v", old, sec.Data["pending_key"] != "")
		}
	}
	j, _, err := store.ReadJournal(ctx, "prod")
	if err != nil || j.OldFingerprint != "fp:old" {
		t.Errorf("journal %+v, %v", j, err)
	}
}
