package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/harness"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
	"github.com/qdrantrotator/rotator/vaultsync"
)

const demoDeployment = "demo"

// demo shows the main job on a fresh machine: the Vault dev server and three Qdrant stand-in nodes (file mode: each
// node's config file is mounted from the host), a key in Vault that every node takes, then a full scheduled rotation
// by the rotator binary with progress per node and phase, then proof that the new key works and the old one is
// refused. Everything it started is removed at the end (after Ctrl-C with keep).
func demo(ctx context.Context, out io.Writer, rotatorBin string, keep bool) (err error) {
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }
	work, err := os.MkdirTemp("", "qdrant-rotator-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	bin, err := vaultdev.Binary(ctx)
	if err != nil {
		return err
	}
	step("starting the Vault dev server (%s)", bin)
	token := "demo-" + randomHex(8)
	vault, err := vaultdev.Start(ctx, bin, vaultdev.Options{Token: token})
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
			step("removed the node containers and the network %s", h.Network())
		}
		err = errors.Join(err, cerr)
	}()
	step("building the Qdrant stand-in image (FROM scratch, no registry)")
	image, err := harness.BuildStandinImage(ctx, h.Engine)
	if err != nil {
		return err
	}

	store, err := vaultsync.New(vaultsync.Options{Address: vault.Addr, Token: token, Mount: "secret", Prefix: "qdrant"})
	if err != nil {
		return err
	}
	secret, err := store.FingerprintSecret(ctx, true)
	if err != nil {
		return err
	}
	fp, err := rotation.NewFingerprinter(secret)
	if err != nil {
		return err
	}
	k1, err := rotation.NewKey()
	if err != nil {
		return err
	}
	if _, err := store.Publish(ctx, demoDeployment, rotation.SlotAdmin, rotation.KeyRecord{Key: k1, Fingerprint: fp.Of(k1), Since: time.Now(), RotationID: "demo-setup"}, 0); err != nil {
		return err
	}
	step("minted key %s and wrote it to Vault at secret/%s (the path consumers read)", fp.Of(k1), store.ConsumerPath(demoDeployment, rotation.SlotAdmin))

	var names []string
	tag := randomHex(3)
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("qdrant-demo-%s-%d", tag, i)
		dir := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o700); err != nil {
			return err
		}
		conf := fmt.Sprintf("# %s: Qdrant config mounted from the host; the rotator edits only the key slots\nservice:\n  api_key: %s\n", name, k1.Reveal())
		if err := os.WriteFile(filepath.Join(dir, "local.yaml"), []byte(conf), 0o600); err != nil {
			return err
		}
		n, err := h.StartNode(ctx, harness.NodeSpec{Name: name, Image: image, Binds: []string{
			filepath.Join(dir, "local.yaml") + ":/qdrant/config/local.yaml",
			filepath.Join(dir, "storage") + ":/qdrant/storage",
		}})
		if err != nil {
			return err
		}
		names = append(names, name)
		step("started node %s with the key from Vault in its mounted config file; REST on %s", name, n.URL)
	}

	tokenFile := filepath.Join(work, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return err
	}
	cfgPath := filepath.Join(work, "rotator.yml")
	cfg := fmt.Sprintf(`vault:
  address: %s
  token_file: vault-token
  mount: secret
  prefix: qdrant
deployments:
  - name: %s
    mode: file
    containers: [%s]
    config_path: /qdrant/config/local.yaml
    grace: 2s
`, vault.Addr, demoDeployment, strings.Join(names, ", "))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	step("rotator config %s:\n%s", cfgPath, indent(cfg))

	for _, args := range [][]string{
		{"rotate", "--config", cfgPath, "--dry-run"},
		{"rotate", "--config", cfgPath},
		{"verify", "--config", cfgPath},
		{"status", "--config", cfgPath},
	} {
		step("%s %s", filepath.Base(rotatorBin), strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, rotatorBin, args...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("rotator %s: %w", args[0], err)
		}
	}

	cur, err := store.ReadCurrent(ctx, demoDeployment, rotation.SlotAdmin)
	if err != nil {
		return err
	}
	for _, name := range names {
		url, err := h.URLOf(ctx, name, "http")
		if err != nil {
			return err
		}
		for _, c := range []struct {
			what string
			key  rotation.Key
			want int
		}{{"the new key " + fp.Of(cur.Key) + " from Vault", cur.Key, http.StatusOK}, {"the old key " + fp.Of(k1), k1, http.StatusUnauthorized}} {
			got, err := collections(ctx, url, c.key)
			if err != nil {
				return err
			}
			if got != c.want {
				return fmt.Errorf("%s: GET /collections with %s: HTTP %d, want %d", name, c.what, got, c.want)
			}
			step("%s: GET /collections with %s: HTTP %d", name, c.what, got)
		}
	}
	step("proved: every node takes the new key Vault holds (version %d) and refuses the old one", cur.Version)

	if keep {
		step("staying up; Vault at %s (VAULT_TOKEN in %s), config %s; press Ctrl-C to stop and remove everything", vault.Addr, tokenFile, cfgPath)
		<-ctx.Done()
	}
	step("tearing down (make testbed-down removes leftovers of an interrupted run)")
	return nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// collections makes the authenticated call that proves a key: GET /collections (health endpoints skip auth).
func collections(ctx context.Context, base string, key rotation.Key) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/collections", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("api-key", key.Reveal())
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
