package vaultsync

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/qdrantrotator/rotator/testbed/vaultdev"
)

// TestPolicy reads a consumer policy with a token that may, reads "" for a policy that does not exist, and gets an
// error (never a panic, never a guess) with a token the policy endpoint denies.
func TestPolicy(t *testing.T) {
	srv := vaultdev.StartT(t)
	ctx := context.Background()
	root, err := New(Options{Address: srv.Addr, Token: srv.Token, Mount: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	const text = "path \"secret/data/qdrant/deployments/prod/read-only\" {\n  capabilities = [\"read\"]\n}\n"
	if err := root.client.Sys().PutPolicyWithContext(ctx, "qdrant-consumer-read-only", text); err != nil {
		t.Fatal(err)
	}
	got, err := root.Policy(ctx, "qdrant-consumer-read-only")
	if err != nil || !strings.Contains(got, "deployments/prod/read-only") {
		t.Fatalf("Policy = %q, %v", got, err)
	}
	if got, err := root.Policy(ctx, "no-such-policy"); err != nil || got != "" {
		t.Fatalf("missing policy: %q, %v; want \"\", nil", got, err)
	}
	sec, err := root.client.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	limited, err := New(Options{Address: srv.Addr, Token: sec.Auth.ClientToken, Mount: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := limited.Policy(ctx, "qdrant-consumer-read-only"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("denied read: %v, want a 403 error", err)
	}
}
