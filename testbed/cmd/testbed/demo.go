package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/harness"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
	"github.com/qdrantrotator/rotator/vaultsync"
)

// demoPath is where the demo keeps the deployment's admin key in Vault's KV v2 mount "secret".
const demoPath = "qdrant/demo/admin"

// demo brings up the Vault dev server and one stand-in node, writes a fresh key to Vault, starts the node with the
// key read back from Vault, and proves with authenticated calls that the node takes that key and nothing else.
// Everything it started is removed at the end (after Ctrl-C with keep).
func demo(ctx context.Context, out io.Writer, keep bool) (err error) {
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }

	bin, err := vaultdev.Binary(ctx)
	if err != nil {
		return err
	}
	step("starting the Vault dev server (%s)", bin)
	token := "demo-" + randomHex(8)
	vault, err := vaultdev.Start(ctx, bin, token, nil)
	if err != nil {
		return err
	}
	defer func() {
		vault.Stop()
		step("stopped the Vault dev server")
	}()
	step("Vault dev server at %s (in memory, KV v2 at secret/)", vault.Addr)

	h, err := harness.New(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cerr := h.Close(context.Background())
		if cerr == nil {
			step("removed the node container and the network %s", h.Network())
		}
		err = errors.Join(err, cerr)
	}()
	step("building the Qdrant stand-in image (FROM scratch, no registry)")
	image, err := harness.BuildStandinImage(ctx, h.Engine)
	if err != nil {
		return err
	}
	step("image %s", image)

	fp, err := rotation.NewFingerprinter([]byte(randomHex(16)))
	if err != nil {
		return err
	}
	key, err := rotation.NewKey()
	if err != nil {
		return err
	}
	store, err := vaultsync.New(vaultsync.Options{Address: vault.Addr, Token: token, Mount: "secret"})
	if err != nil {
		return err
	}
	version, err := store.Put(ctx, demoPath, map[string]string{
		"api_key":       key.Reveal(),
		"fingerprint":   fp.Of(key),
		"current_since": time.Now().UTC().Format(time.RFC3339),
	}, 0)
	if err != nil {
		return err
	}
	step("minted a 256-bit key %s and wrote it to Vault secret/%s (version %d, check-and-set 0)", fp.Of(key), demoPath, version)

	fields, _, err := store.Get(ctx, demoPath)
	if err != nil {
		return err
	}
	fromVault, err := rotation.ParseKey(fields["api_key"])
	if err != nil {
		return fmt.Errorf("vault record %s: api_key: %w", demoPath, err)
	}
	node, err := h.StartNode(ctx, harness.NodeSpec{
		Name:  "qdrant-demo-" + randomHex(3),
		Image: image,
		Env:   []string{"QDRANT__SERVICE__API_KEY=" + fromVault.Reveal()},
	})
	if err != nil {
		return err
	}
	step("started node %s with the key read from Vault (%s), REST on %s", node.Name, fp.Of(fromVault), node.URL)

	wrong, err := rotation.NewKey()
	if err != nil {
		return err
	}
	checks := []struct {
		what string
		key  rotation.Key
		want int
	}{
		{"the key from Vault", fromVault, http.StatusOK},
		{"no key", rotation.Key{}, http.StatusUnauthorized},
		{"another key " + fp.Of(wrong), wrong, http.StatusUnauthorized},
	}
	for _, c := range checks {
		got, err := collections(ctx, node.URL, c.key)
		if err != nil {
			return err
		}
		if got != c.want {
			return fmt.Errorf("GET /collections with %s: HTTP %d, want %d", c.what, got, c.want)
		}
		step("GET /collections with %s: HTTP %d, as it should", c.what, got)
	}
	step("proved: the node accepts exactly the key Vault holds")

	if keep {
		step("staying up; Vault at %s, node at %s; press Ctrl-C to stop and remove everything", vault.Addr, node.URL)
		<-ctx.Done()
	}
	step("tearing down (make testbed-down removes leftovers of an interrupted run)")
	return nil
}

// collections makes the authenticated call that proves a key: GET /collections (health endpoints skip auth).
func collections(ctx context.Context, base string, key rotation.Key) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/collections", nil)
	if err != nil {
		return 0, err
	}
	if !key.IsZero() {
		req.Header.Set("api-key", key.Reveal())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s/collections: %w", base, err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
