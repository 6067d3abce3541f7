package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.yaml.in/yaml/v3"

	"github.com/qdrantrotator/rotator/testbed/syncbuf"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// The tests never print a key or a secret id: they compare inside the test (or inside the agent's child, by hash)
// and log booleans and durations. Every output they show goes through secrets.redact first.

// renderInterval replaces the kit's static_secret_render_interval in the agent tests.
const renderInterval = 2 * time.Second

// --- setup.sh and the policies ------------------------------------------------------------------------------------

func TestSetupArguments(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("bash", "-n", filepath.Join("vault", "setup.sh")).CombinedOutput(); err != nil {
		t.Fatalf("bash -n vault/setup.sh: %v\n%s", err, out)
	}
	info, err := os.Stat(filepath.Join("vault", "setup.sh"))
	if err != nil || info.Mode()&0o111 == 0 {
		t.Fatalf("vault/setup.sh must exist and be executable: %v", err)
	}
	// Bad command lines fail (exit 2) with a message naming the problem, before any Vault call.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no secret dir", []string{"--deployment", "prod", "--consumer", "a:admin"}, "--secret-dir"},
		{"consumer before deployment", []string{"--secret-dir", "x", "--consumer", "a:admin"}, "give --deployment"},
		{"unknown kind", []string{"--secret-dir", "x", "--deployment", "prod", "--consumer", "a:owner"}, "kind owner"},
		{"bad key name", []string{"--secret-dir", "x", "--deployment", "prod", "--consumer", "a:key=../b"}, "key name ../b"},
		{"bad deployment", []string{"--secret-dir", "x", "--deployment", "Prod/x", "--consumer", "a:admin"}, "--deployment Prod/x"},
		{"consumer twice", []string{"--secret-dir", "x", "--deployment", "prod", "--consumer", "a:admin", "--consumer", "a:read-only"}, "given twice"},
		{"rotator's name", []string{"--secret-dir", "x", "--deployment", "prod", "--consumer", "qdrant-rotator:admin"}, "the rotator's"},
		{"unknown flag", []string{"--secret-dir", "x", "--force"}, "unknown argument --force"},
		{"empty prefix", []string{"--secret-dir", "x", "--prefix", ""}, "--prefix must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join("vault", "setup.sh"), tc.args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
				t.Errorf("setup.sh %s: want exit 2 and %q, got %v:\n%s", strings.Join(tc.args, " "), tc.want, err, out)
			}
		})
	}
}

func TestVaultSetupAndPolicies(t *testing.T) {
	t.Parallel()
	srv := vaultdev.StartT(t)
	sec := &secrets{}
	root := newClient(t, srv.Addr, srv.Token)
	credDir := filepath.Join(t.TempDir(), "approle")
	args := []string{"--secret-dir", credDir, "--deployment", "prod",
		"--consumer", "search-api:read-only", "--consumer", "ingest:admin", "--consumer", "products:key=products"}

	// Twice: the second run changes nothing (same role ids, same secret ids, which still log in).
	out1 := runSetup(t, srv, sec, args...)
	roles1 := roleIDs(t, out1)
	ids1 := map[string]string{}
	for _, name := range []string{"qdrant-rotator", "search-api", "ingest", "products"} {
		checkCredFiles(t, filepath.Join(credDir, name))
		ids1[name] = readTrim(t, filepath.Join(credDir, name, "secret_id"))
		sec.add(ids1[name])
	}
	sec.assertAbsent(t, "setup.sh output", out1)
	out2 := runSetup(t, srv, sec, args...)
	sec.assertAbsent(t, "setup.sh output", out2)
	if roles2 := roleIDs(t, out2); !equalMaps(roles1, roles2) {
		t.Errorf("second run: role ids changed: %v, then %v", roles1, roles2)
	}
	for name, id := range ids1 {
		if readTrim(t, filepath.Join(credDir, name, "secret_id")) != id {
			t.Errorf("second run replaced the secret id of %s (it should keep a valid one)", name)
		}
	}
	if n := strings.Count(out2, "(kept)"); n != 4 {
		t.Errorf("second run: want 4 secret ids kept, got %d:\n%s", n, sec.redact(out2))
	}
	if !strings.Contains(out2, "reads secret/data/qdrant/deployments/prod/keys/products") {
		t.Errorf("setup.sh does not say which path each consumer reads:\n%s", sec.redact(out2))
	}
	// The policies parse: Vault took them, with the mount and prefix as written.
	for _, p := range []string{"qdrant-rotator", "qdrant-consumer-admin", "qdrant-consumer-read-only", "qdrant-consumer-key"} {
		body, err := root.Sys().GetPolicy(p)
		if err != nil || !strings.Contains(body, `path "secret/`) {
			t.Errorf("policy %s is not in Vault as written: %v", p, err)
		}
	}

	// Records of two deployments, written as the rotator would (root here, to seed).
	ctx := context.Background()
	kvRoot := root.KVv2("secret")
	keys := map[string]string{}
	for _, rec := range []string{"prod/admin", "prod/read-only", "prod/keys/products", "prod/keys/other", "staging/admin"} {
		keys[rec] = randomKey(t)
		sec.add(keys[rec])
		putRecord(t, kvRoot, "qdrant/deployments/"+rec, keys[rec], 0)
	}

	consumers := map[string]string{"ingest": "prod/admin", "search-api": "prod/read-only", "products": "prod/keys/products"}
	for name, own := range consumers {
		t.Run("consumer "+name, func(t *testing.T) {
			c := login(t, srv.Addr, "approle", filepath.Join(credDir, name))
			kv := c.KVv2("secret")
			got, err := kv.Get(ctx, "qdrant/deployments/"+own)
			if err != nil {
				t.Fatalf("%s reads its record %s: %v", name, own, err)
			}
			if v, _ := got.Data["api_key"].(string); v != keys[own] {
				t.Errorf("%s: the key read from %s is not the one written (match=false)", name, own)
			}
			for rec := range keys {
				if rec == own {
					continue
				}
				_, err := kv.Get(ctx, "qdrant/deployments/"+rec)
				want403(t, name+" reads "+rec, err)
			}
			_, err = kv.Get(ctx, "qdrant/rotator/journal/prod")
			want403(t, name+" reads the rotator's journal", err)
			_, err = kv.GetMetadata(ctx, "qdrant/deployments/"+own)
			want403(t, name+" reads the metadata of its record", err)
			_, err = kv.Put(ctx, "qdrant/deployments/"+own, map[string]any{"api_key": "x"}, api.WithCheckAndSet(1))
			want403(t, name+" writes its record", err)
			_, err = c.Logical().List("secret/metadata/qdrant/deployments")
			want403(t, name+" lists the deployments", err)
		})
	}

	t.Run("rotator", func(t *testing.T) {
		c := login(t, srv.Addr, "approle", filepath.Join(credDir, "qdrant-rotator"))
		kv := c.KVv2("secret")
		// Data: read, new versions with check-and-set, new records (create), its own records.
		if _, err := kv.Get(ctx, "qdrant/deployments/prod/admin"); err != nil {
			t.Errorf("read the admin record: %v", err)
		}
		k2 := randomKey(t)
		sec.add(k2)
		putRecord(t, kv, "qdrant/deployments/prod/admin", k2, 1)
		_, err := kv.Put(ctx, "qdrant/deployments/prod/admin", map[string]any{"api_key": k2}, api.WithCheckAndSet(1))
		if statusOf(err) != http.StatusBadRequest {
			t.Errorf("a stale check-and-set must be refused with 400, got %v", err)
		}
		putRecord(t, kv, "qdrant/deployments/new/admin", randomKey(t), 0)
		for _, p := range []string{"qdrant/rotator/journal/prod", "qdrant/rotator/fingerprint", "qdrant/deployments/prod/keys/fresh"} {
			if _, err := kv.Put(ctx, p, map[string]any{"x": "y"}, api.WithCheckAndSet(0)); err != nil {
				t.Errorf("create %s: %v", p, err)
			}
		}
		// Metadata: read, patch (cas_required, version labels), create/update.
		yes := true
		if err := kv.PatchMetadata(ctx, "qdrant/deployments/prod/admin", api.KVMetadataPatchInput{
			CASRequired: &yes, CustomMetadata: map[string]any{"v1": "previous", "v2": "current"},
		}); err != nil {
			t.Errorf("patch metadata: %v", err)
		}
		if m, err := kv.GetMetadata(ctx, "qdrant/deployments/prod/admin"); err != nil || !m.CASRequired || m.CustomMetadata["v1"] != "previous" {
			t.Errorf("read metadata after the patch: %v", err)
		}
		if err := kv.PutMetadata(ctx, "qdrant/deployments/prod/keys/planned", api.KVMetadataPutInput{CASRequired: true}); err != nil {
			t.Errorf("create metadata: %v", err)
		}
		// Soft delete of an old version; it stays recoverable (by an operator: the rotator cannot undelete).
		if err := kv.DeleteVersions(ctx, "qdrant/deployments/prod/admin", []int{1}); err != nil {
			t.Errorf("soft-delete version 1: %v", err)
		}
		if v1, err := kvRoot.GetVersion(ctx, "qdrant/deployments/prod/admin", 1); err != nil || v1.Data != nil || v1.VersionMetadata.DeletionTime.IsZero() {
			t.Errorf("version 1 is not soft-deleted: %v", err)
		}
		t.Run("the rotator policy cannot delete metadata", func(t *testing.T) {
			want403(t, "DELETE secret/metadata/qdrant/deployments/prod/admin", kv.DeleteMetadata(ctx, "qdrant/deployments/prod/admin"))
			want403(t, "DELETE secret/metadata/qdrant/rotator/journal/prod", kv.DeleteMetadata(ctx, "qdrant/rotator/journal/prod"))
			if m, err := kvRoot.GetMetadata(ctx, "qdrant/deployments/prod/admin"); err != nil || m.CurrentVersion != 2 {
				t.Errorf("the record's history must be intact: %v", err)
			}
		})
		want403(t, "delete the latest version (DELETE data/)", kv.Delete(ctx, "qdrant/deployments/prod/admin"))
		want403(t, "destroy a version", kv.Destroy(ctx, "qdrant/deployments/prod/admin", []int{1}))
		want403(t, "undelete a version", kv.Undelete(ctx, "qdrant/deployments/prod/admin", []int{1}))
		want403(t, "soft-delete a journal version", kv.DeleteVersions(ctx, "qdrant/rotator/journal/prod", []int{1}))
		_, err = c.Logical().JSONMergePatch(ctx, "secret/data/qdrant/deployments/prod/admin", map[string]any{"data": map[string]any{"kind": "key"}})
		want403(t, "merge-patch data", err)
		_, err = c.Logical().List("secret/metadata/qdrant/deployments")
		want403(t, "list", err)
		_, err = kv.Put(ctx, "elsewhere/x", map[string]any{"x": "y"})
		want403(t, "write outside the prefix", err)
		_, err = kv.Get(ctx, "elsewhere/x")
		want403(t, "read outside the prefix", err)
		want403(t, "write a policy", c.Sys().PutPolicy("mine", `path "*" { capabilities = ["sudo"] }`))
	})

	t.Run("rotate secret ids", func(t *testing.T) {
		out := runSetup(t, srv, sec, append(args, "--rotate-secret-ids")...)
		for _, n := range []string{"qdrant-rotator", "search-api", "ingest", "products"} {
			sec.add(readTrim(t, filepath.Join(credDir, n, "secret_id")))
		}
		sec.assertAbsent(t, "setup.sh output", out)
		fresh := readTrim(t, filepath.Join(credDir, "ingest", "secret_id"))
		sec.add(fresh)
		if fresh == ids1["ingest"] {
			t.Fatal("--rotate-secret-ids kept the old secret id")
		}
		checkCredFiles(t, filepath.Join(credDir, "ingest"))
		_, err := newClient(t, srv.Addr, "").Logical().Write("auth/approle/login", map[string]any{"role_id": roles1["qdrant-consumer-ingest"], "secret_id": ids1["ingest"]})
		if err == nil {
			t.Error("the old secret id still logs in after --rotate-secret-ids")
		}
		login(t, srv.Addr, "approle", filepath.Join(credDir, "ingest"))
	})

	t.Run("another mount and prefix", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "approle")
		alt := []string{"--secret-dir", dir, "--mount", "kv-alt", "--prefix", "team/qdrant", "--approle-path", "approle-alt",
			"--deployment", "staging", "--consumer", "alt-app:admin"}
		out := runSetup(t, srv, sec, alt...)
		for _, want := range []string{"kv mount kv-alt/: KV v2, enabled", "auth method approle-alt/: approle, enabled", "reads kv-alt/data/team/qdrant/deployments/staging/admin"} {
			if !strings.Contains(out, want) {
				t.Errorf("setup.sh output lacks %q:\n%s", want, sec.redact(out))
			}
		}
		out = runSetup(t, srv, sec, alt...)
		if !strings.Contains(out, "kv mount kv-alt/: KV v2, exists") || !strings.Contains(out, "auth method approle-alt/: approle, exists") {
			t.Errorf("second run should find the mount and the auth method:\n%s", sec.redact(out))
		}
		for _, n := range []string{"qdrant-rotator", "alt-app"} {
			sec.add(readTrim(t, filepath.Join(dir, n, "secret_id")))
		}
		sec.assertAbsent(t, "setup.sh output", out)
		key := randomKey(t)
		sec.add(key)
		rot := login(t, srv.Addr, "approle-alt", filepath.Join(dir, "qdrant-rotator"))
		putRecord(t, rot.KVv2("kv-alt"), "team/qdrant/deployments/staging/admin", key, 0)
		_, err := rot.KVv2("secret").Get(ctx, "qdrant/deployments/prod/admin")
		want403(t, "rotator rewritten for kv-alt reads secret/qdrant", err)
		app := login(t, srv.Addr, "approle-alt", filepath.Join(dir, "alt-app"))
		got, err := app.KVv2("kv-alt").Get(ctx, "team/qdrant/deployments/staging/admin")
		if err != nil || got.Data["api_key"] != key {
			t.Errorf("alt-app reads its record: %v (match=%v)", err, err == nil && got.Data["api_key"] == key)
		}
	})

	t.Run("a KV v1 mount is refused", func(t *testing.T) {
		if err := root.Sys().Mount("kv1", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
			t.Fatal(err)
		}
		out, err := setupCmd(t, srv, "--secret-dir", t.TempDir(), "--mount", "kv1")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(out, "not KV v2") {
			t.Errorf("want a refusal naming KV v2, got %v:\n%s", err, sec.redact(out))
		}
	})
}

// --- Vault Agent -----------------------------------------------------------------------------------------------

func TestVaultAgent(t *testing.T) {
	t.Parallel()
	srv := vaultdev.StartT(t)
	sec := &secrets{}
	root := newClient(t, srv.Addr, srv.Token)
	credDir := filepath.Join(t.TempDir(), "approle")
	out := runSetup(t, srv, sec, "--secret-dir", credDir, "--deployment", "prod",
		"--consumer", "app-env:admin", "--consumer", "app-file:key=products", "--consumer", "app-sup:read-only")
	for _, n := range []string{"app-env", "app-file", "app-sup"} {
		sec.add(readTrim(t, filepath.Join(credDir, n, "secret_id")))
	}
	sec.assertAbsent(t, "setup.sh output", out)
	kvRoot := root.KVv2("secret")

	t.Run("env-file", func(t *testing.T) {
		t.Parallel()
		rec := "qdrant/deployments/prod/admin"
		key1 := randomKey(t)
		sec.add(key1)
		putRecord(t, kvRoot, rec, key1, 0)
		outDir := t.TempDir()
		cfg := fillAgentConfig(t, "env-file", map[string]string{
			"@VAULT_ADDR@": srv.Addr, "@APPROLE_DIR@": filepath.Join(credDir, "app-env"), "@DEPLOYMENT@": "prod",
			"@RECORD@": "admin", "@OUTPUT_DIR@": outDir, "@QDRANT_HOST@": "qdrant.test", "@QDRANT_PORT@": "6333",
		}, "")
		a := startAgent(t, srv.Bin, "env-file", cfg, sec)
		file := filepath.Join(outDir, "qdrant.env")
		a.waitFor(t, 15*time.Second, "the first render of qdrant.env", func() bool {
			env := readEnvFile(file)
			return env["QDRANT_API_KEY"] == key1 && env["QDRANT_API_KEY_VERSION"] == "1"
		})
		env := readEnvFile(file)
		if env["QDRANT_HOST"] != "qdrant.test" || env["QDRANT_PORT"] != "6333" || len(env) != 4 {
			t.Errorf("qdrant.env: want QDRANT_API_KEY, QDRANT_API_KEY_VERSION, QDRANT_HOST=qdrant.test, QDRANT_PORT=6333; got the names %v", mapKeys(env))
		}
		checkPerm(t, file, 0o400)

		key2 := randomKey(t)
		sec.add(key2)
		putRecord(t, kvRoot, rec, key2, 1)
		lag := a.waitFor(t, renderInterval+5*time.Second, "qdrant.env re-rendered with version 2", func() bool {
			env := readEnvFile(file)
			return env["QDRANT_API_KEY"] == key2 && env["QDRANT_API_KEY_VERSION"] == "2"
		})
		t.Logf("env-file: the new key was in qdrant.env %s after it was written (static_secret_render_interval %s)", lag.Round(time.Millisecond), renderInterval)
		if lag > renderInterval+time.Second {
			t.Errorf("re-render lag %s exceeds the render interval %s (+1s)", lag, renderInterval)
		}
		checkPerm(t, file, 0o400)
		checkOnlyFiles(t, outDir, "qdrant.env") // backup = false: no qdrant.env.bak with the old key
	})

	t.Run("file-per-key", func(t *testing.T) {
		t.Parallel()
		rec := "qdrant/deployments/prod/keys/products"
		key1 := randomKey(t)
		sec.add(key1)
		putRecord(t, kvRoot, rec, key1, 0)
		outDir, logDir := t.TempDir(), t.TempDir()
		file := filepath.Join(outDir, "qdrant-api-key")
		reloads := filepath.Join(logDir, "reloads")
		// The reload command records a hash of the file as it sees it: proof that it ran after the new key landed.
		reload := fmt.Sprintf("sha256sum < %s | cut -d' ' -f1 >> %s", file, reloads)
		cfg := fillAgentConfig(t, "file-per-key", map[string]string{
			"@VAULT_ADDR@": srv.Addr, "@APPROLE_DIR@": filepath.Join(credDir, "app-file"), "@DEPLOYMENT@": "prod",
			"@RECORD@": "keys/products", "@OUTPUT_DIR@": outDir,
		}, hclList("sh", "-c", reload))
		a := startAgent(t, srv.Bin, "file-per-key", cfg, sec)
		a.waitFor(t, 15*time.Second, "the first render of the key file and its reload", func() bool {
			b, _ := os.ReadFile(file)
			return string(b) == key1 && lastLine(reloads) == hashHex(key1)
		})
		checkPerm(t, file, 0o400)
		n1 := len(lines(reloads))

		key2 := randomKey(t)
		sec.add(key2)
		putRecord(t, kvRoot, rec, key2, 1)
		lag := a.waitFor(t, renderInterval+5*time.Second, "the key file re-rendered", func() bool {
			b, _ := os.ReadFile(file)
			return string(b) == key2
		})
		reloadLag := a.waitFor(t, 5*time.Second, "the reload command after the change", func() bool {
			return lastLine(reloads) == hashHex(key2)
		})
		t.Logf("file-per-key: the new key was in the file %s after it was written, the reload command ran %s later (static_secret_render_interval %s)",
			lag.Round(time.Millisecond), reloadLag.Round(time.Millisecond), renderInterval)
		if lag > renderInterval+time.Second {
			t.Errorf("re-render lag %s exceeds the render interval %s (+1s)", lag, renderInterval)
		}
		if n2 := len(lines(reloads)); n2 != n1+1 {
			t.Errorf("want exactly one reload for one change, got %d", n2-n1)
		}
		checkPerm(t, file, 0o400)
		checkOnlyFiles(t, outDir, "qdrant-api-key")
	})

	t.Run("supervisor", func(t *testing.T) {
		t.Parallel()
		rec := "qdrant/deployments/prod/read-only"
		key1 := randomKey(t)
		sec.add(key1)
		putRecord(t, kvRoot, rec, key1, 0)
		starts := filepath.Join(t.TempDir(), "starts")
		// The child writes its key's hash, never the key; sleep bounds an orphan should the agent be killed.
		child := `h=$(printf %s "$QDRANT_API_KEY" | sha256sum | cut -d' ' -f1); ` +
			`echo "$QDRANT_API_KEY_VERSION $h $QDRANT_HOST:$QDRANT_PORT" >> ` + starts + `; exec sleep 120`
		cfg := fillAgentConfig(t, "supervisor", map[string]string{
			"@VAULT_ADDR@": srv.Addr, "@APPROLE_DIR@": filepath.Join(credDir, "app-sup"), "@DEPLOYMENT@": "prod",
			"@RECORD@": "read-only", "@QDRANT_HOST@": "qdrant.test", "@QDRANT_PORT@": "6334",
		}, hclList("sh", "-c", child))
		a := startAgent(t, srv.Bin, "supervisor", cfg, sec)
		a.waitFor(t, 15*time.Second, "the child started with QDRANT_API_KEY in its environment", func() bool {
			return lastLine(starts) == "1 "+hashHex(key1)+" qdrant.test:6334"
		})

		key2 := randomKey(t)
		sec.add(key2)
		putRecord(t, kvRoot, rec, key2, 1)
		lag := a.waitFor(t, renderInterval+5*time.Second, "the child restarted with the new key", func() bool {
			return lastLine(starts) == "2 "+hashHex(key2)+" qdrant.test:6334"
		})
		// The agent restarts the child 2 s after it sees a change (a fixed debounce in its exec server).
		t.Logf("supervisor: the child ran with the new key %s after it was written (static_secret_render_interval %s + the agent's 2s restart debounce)", lag.Round(time.Millisecond), renderInterval)
		if lag > renderInterval+2*time.Second+time.Second {
			t.Errorf("restart lag %s exceeds the render interval %s + 2s debounce (+1s)", lag, renderInterval)
		}
		if n := len(lines(starts)); n != 2 {
			t.Errorf("want 2 starts of the child (one per key), got %d", n)
		}
	})
}

// TestAgentConfigsShape holds every variant to the kit's rules: error_on_missing_key on every template, exit on
// retry failure, a render interval, AppRole with the secret id file kept, paths written secret/data/... explicitly.
func TestAgentConfigsShape(t *testing.T) {
	t.Parallel()
	for _, variant := range []string{"env-file", "file-per-key", "supervisor"} {
		t.Run(variant, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("vault-agent", variant, "agent.hcl"))
			if err != nil {
				t.Fatal(err)
			}
			// Unescaped, so inline contents (escaped quotes) and heredocs read the same.
			s := strings.ReplaceAll(stripComments(string(b)), `\"`, `"`)
			blocks := len(regexp.MustCompile(`(?m)^(template|env_template "[A-Z_]+") \{`).FindAllString(s, -1))
			if blocks == 0 || strings.Count(s, "error_on_missing_key = true") != blocks {
				t.Errorf("want error_on_missing_key = true in each of the %d template blocks", blocks)
			}
			for _, want := range []string{"exit_on_retry_failure = true", `static_secret_render_interval = "30s"`,
				`type       = "approle"`, "role_id_file_path", "secret_id_file_path", "remove_secret_id_file_after_reading = false",
				`secret "secret/data/qdrant/deployments/@DEPLOYMENT@/@RECORD@"`} {
				if !strings.Contains(s, want) {
					t.Errorf("missing %s", want)
				}
			}
			if variant == "supervisor" {
				if regexp.MustCompile(`(?m)^template \{`).MatchString(s) || strings.Count(s, "\nexec {") != 1 {
					t.Error("process-supervisor mode: want one top-level exec and no file template")
				}
			}
		})
	}
}

// --- compose, the example config, the image, systemd ------------------------------------------------------------

func TestComposeConfig(t *testing.T) {
	t.Parallel()
	dc, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose is required to validate compose.yaml: %v", err)
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) string {
		cmd := exec.Command(dc, append([]string{"-f", "compose.yaml"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PWD="+dir, "HOST_UID=1000", "DOCKER_GID=999")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("docker-compose %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		if stderr.Len() > 0 {
			t.Errorf("docker-compose %s warns:\n%s", strings.Join(args, " "), stderr.String())
		}
		return stdout.String()
	}
	if out := compose("config", "-q"); out != "" {
		t.Errorf("config -q printed: %s", out)
	}

	var c struct {
		Services map[string]struct {
			Image         string   `yaml:"image"`
			ContainerName string   `yaml:"container_name"`
			User          string   `yaml:"user"`
			Profiles      []string `yaml:"profiles"`
			Volumes       []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(compose("config")), &c); err != nil {
		t.Fatalf("parse docker-compose config: %v", err)
	}
	want := []string{"consumer", "consumer-agent", "qdrant-0", "qdrant-1", "qdrant-2", "rotator", "vault"}
	if got := mapKeys(c.Services); !slices.Equal(got, want) {
		t.Errorf("services: want %v, got %v", want, got)
	}
	if img := c.Services["vault"].Image; img != "hashicorp/vault:1.14" || c.Services["consumer-agent"].Image != img {
		t.Errorf("vault and the agent: want hashicorp/vault:1.14, got %q and %q", img, c.Services["consumer-agent"].Image)
	}
	rot := c.Services["rotator"]
	if !slices.Contains(rot.Volumes, "/var/run/docker.sock:/var/run/docker.sock:rw") {
		t.Errorf("the rotator needs the Docker socket: %v", rot.Volumes)
	}
	if !slices.Contains(rot.Profiles, "rotator") || rot.User != "1000:999" {
		t.Errorf("the rotator: want profile rotator (one-shot) and user HOST_UID:DOCKER_GID, got %v %q", rot.Profiles, rot.User)
	}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("qdrant-%d", i)
		s := c.Services[name]
		if !strings.HasPrefix(s.Image, "qdrant/qdrant:v1.") || s.ContainerName != name {
			t.Errorf("%s: want a qdrant/qdrant:v1.x image and container_name %s, got %q %q", name, name, s.Image, s.ContainerName)
		}
		hostDir := filepath.Join(dir, name)
		if !slices.Contains(s.Volumes, hostDir+"/local.yaml:/qdrant/config/local.yaml:rw") || !slices.Contains(s.Volumes, name+"-storage:/qdrant/storage:rw") {
			t.Errorf("%s: want ./%s/local.yaml at /qdrant/config/local.yaml and a named volume at /qdrant/storage, got %v", name, name, s.Volumes)
		}
		// The rotator edits the file Docker reports as the bind source: it must see it at that same path.
		if !slices.Contains(rot.Volumes, hostDir+":"+hostDir+":rw") {
			t.Errorf("the rotator must mount %s at the same path, got %v", hostDir, rot.Volumes)
		}
	}
	for _, f := range []string{"rotator.yml", "Dockerfile", "vault-agent/env-file/agent.hcl", "qdrant-0/local.yaml", "qdrant-1/local.yaml", "qdrant-2/local.yaml"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("compose.yaml refers to %s: %v", f, err)
		}
	}
}

func TestExampleConfigs(t *testing.T) {
	t.Parallel()
	check := exec.Command("go", "run", "./cmd/rotator", "check", "--config", "deploy/rotator.yml")
	check.Dir = ".."
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("rotator check rotator.yml: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "1 deployment(s)") || !strings.Contains(string(out), "mode file, nodes qdrant-0, qdrant-1, qdrant-2") {
		t.Errorf("rotator.yml: want one file-mode deployment of qdrant-0..2, got:\n%s", out)
	}
	for i := 0; i < 3; i++ {
		var node struct {
			Service map[string]any `yaml:"service"`
		}
		b, err := os.ReadFile(fmt.Sprintf("qdrant-%d/local.yaml", i))
		if err == nil {
			err = yaml.Unmarshal(b, &node)
		}
		if err != nil || node.Service["api_key"] != "@INITIAL_KEY@" {
			t.Errorf("qdrant-%d/local.yaml: want service.api_key @INITIAL_KEY@: %v", i, err)
		}
	}

	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{"ARG GO_IMAGE=golang:1.26", "FROM ${GO_IMAGE} AS build", "CGO_ENABLED=0", "./cmd/rotator", "FROM scratch",
		"COPY --from=build /etc/ssl/certs/ca-certificates.crt", "USER 65532:65532", `ENTRYPOINT ["/usr/local/bin/rotator"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
}

// TestDockerfileRuntimeStage builds the Dockerfile's final stage (FROM scratch needs no registry) around a binary
// built here the way its build stage builds it (golang:1.26 cannot be pulled here), and runs it: the binary must be
// static, the image must run as 65532:65532 and answer `version`.
func TestDockerfileRuntimeStage(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Fatalf("the Docker Engine is required: %v\n%s", err, out)
	}
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	ctxDir := t.TempDir()
	mustWrite := func(name, content string, mode os.FileMode) {
		t.Helper()
		path := filepath.Join(ctxDir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	// What the build stage makes: the binary, the passwd and group entries, the CA bundle.
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=deploytest", "-o", filepath.Join(ctxDir, "out", "rotator"), "./cmd/rotator")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rotator as the Dockerfile does: %v\n%s", err, out)
	}
	if f, err := elf.Open(filepath.Join(ctxDir, "out", "rotator")); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the rotator binary is dynamically linked: it cannot run FROM scratch")
			}
		}
		f.Close()
	}
	for _, name := range []string{"passwd", "group"} {
		m := regexp.MustCompile(`echo '([^']+)' >/out/` + name).FindStringSubmatch(df)
		if m == nil {
			t.Fatalf("Dockerfile: no %s entry written in the build stage", name)
		}
		mustWrite("out/"+name, m[1]+"\n", 0o644)
	}
	mustWrite("etc/ssl/certs/ca-certificates.crt", "# CA bundle stand-in\n", 0o644)
	_, final, ok := strings.Cut(df, "\nFROM scratch\n")
	if !ok {
		t.Fatal("Dockerfile: no final stage FROM scratch")
	}
	mustWrite("Dockerfile", "FROM scratch\n"+strings.ReplaceAll(final, "COPY --from=build /", "COPY "), 0o644)

	tag := "qdrant-rotator-deploytest:" + hashHex(randomKey(t))[:12] // hex: a tag may not start with "-"
	tag = regexp.MustCompile(`[^a-z0-9:-]`).ReplaceAllString(tag, "x")
	dockerBuild := exec.Command("docker", "build", "-q", "--label", "io.qdrant-rotator.testbed=deploy", "-t", tag, ".")
	dockerBuild.Dir = ctxDir
	dockerBuild.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := dockerBuild.CombinedOutput(); err != nil {
		t.Fatalf("docker build of the final stage: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", tag).Run() })
	if out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Config.User}}", tag).Output(); err != nil || strings.TrimSpace(string(out)) != "65532:65532" {
		t.Errorf("image user: want 65532:65532, got %q (%v)", out, err)
	}
	if out, err := exec.Command("docker", "run", "--rm", "--network", "none", tag, "version").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "rotator deploytest" {
		t.Errorf("docker run %s version: %v\n%s", tag, err, out)
	}
}

func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	service, err := os.ReadFile("qdrant-rotator.service")
	if err != nil {
		t.Fatal(err)
	}
	timer, err := os.ReadFile("qdrant-rotator.timer")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=oneshot", "User=qdrant-rotator", "SupplementaryGroups=docker",
		"ExecStart=/usr/local/bin/rotator rotate --config /etc/qdrant-rotator/rotator.yml", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "ReadWritePaths=", "PrivateTmp=yes", "CapabilityBoundingSet=\n", "SuccessExitStatus=3"} {
		if !strings.Contains(string(service), want) {
			t.Errorf("qdrant-rotator.service lacks %q", want)
		}
	}
	if strings.Contains(string(service), "DynamicUser=yes") {
		t.Error("qdrant-rotator.service: DynamicUser must stay off (a fixed user owns the AppRole files)")
	}
	for _, want := range []string{"OnCalendar=", "Persistent=true", "WantedBy=timers.target"} {
		if !strings.Contains(string(timer), want) {
			t.Errorf("qdrant-rotator.timer lacks %q", want)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the units were checked as text only")
		return
	}
	// verify wants an existing ExecStart binary; everything else as shipped.
	dir := t.TempDir()
	fixed := strings.Replace(string(service), "ExecStart=/usr/local/bin/rotator", "ExecStart=/bin/true", 1)
	if err := os.WriteFile(filepath.Join(dir, "qdrant-rotator.service"), []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "qdrant-rotator.timer"), timer, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sa, "verify", "--man=no", "qdrant-rotator.service", "qdrant-rotator.timer")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// --- helpers ----------------------------------------------------------------------------------------------------

// secrets collects the values a test must never show, and redacts them from anything it does show.
type secrets struct {
	mu   sync.Mutex
	vals []string
}

func (s *secrets) add(v string) {
	if v == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals = append(s.vals, v)
}

func (s *secrets) redact(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.vals {
		text = strings.ReplaceAll(text, v, "<secret>")
	}
	return text
}

func (s *secrets) assertAbsent(t *testing.T, what, text string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.vals {
		if strings.Contains(text, v) {
			t.Errorf("%s contains a key or secret id", what)
		}
	}
}

// setupCmd runs vault/setup.sh against srv with the vault binary first on PATH; stdout and stderr are returned
// together.
func setupCmd(t *testing.T, srv *vaultdev.Server, args ...string) (string, error) {
	t.Helper()
	binDir := t.TempDir()
	if err := os.Symlink(srv.Bin, filepath.Join(binDir, "vault")); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("vault", "setup.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, args...)
	cmd.Env = []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"VAULT_ADDR=" + srv.Addr, "VAULT_TOKEN=" + srv.Token}
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func runSetup(t *testing.T, srv *vaultdev.Server, sec *secrets, args ...string) string {
	t.Helper()
	out, err := setupCmd(t, srv, args...)
	if err != nil {
		t.Fatalf("setup.sh %s: %v\n%s", strings.Join(args, " "), err, sec.redact(out))
	}
	return out
}

var roleLine = regexp.MustCompile(`(?m)^role (\S+): role_id (\S+);`)

func roleIDs(t *testing.T, out string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, m := range roleLine.FindAllStringSubmatch(out, -1) {
		ids[m[1]] = m[2]
	}
	if len(ids) == 0 {
		t.Fatalf("setup.sh printed no role ids:\n%s", out)
	}
	return ids
}

func checkCredFiles(t *testing.T, dir string) {
	t.Helper()
	checkPerm(t, dir, 0o700)
	checkPerm(t, filepath.Join(dir, "role_id"), 0o600)
	checkPerm(t, filepath.Join(dir, "secret_id"), 0o600)
}

func checkPerm(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s: mode %04o, want %04o", path, got, want)
	}
}

func checkOnlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %v, want only %v", dir, got, want)
	}
}

func newClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		t.Fatal(cfg.Error)
	}
	cfg.Address = addr
	cfg.MaxRetries = 1
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken() // ignore a VAULT_TOKEN of the caller's shell
	if token != "" {
		c.SetToken(token)
	}
	c.SetWrappingLookupFunc(func(string, string) string { return "" })
	return c
}

// login logs in with the AppRole whose role_id and secret_id files are in dir.
func login(t *testing.T, addr, mount, dir string) *api.Client {
	t.Helper()
	c := newClient(t, addr, "")
	sec, err := c.Logical().Write("auth/"+mount+"/login", map[string]any{
		"role_id": readTrim(t, filepath.Join(dir, "role_id")), "secret_id": readTrim(t, filepath.Join(dir, "secret_id")),
	})
	if err != nil || sec == nil || sec.Auth == nil {
		t.Fatalf("AppRole login with %s: %v", dir, err)
	}
	c.SetToken(sec.Auth.ClientToken)
	return c
}

// putRecord writes a consumer record the way the rotator does (check-and-set against cas).
func putRecord(t *testing.T, kv *api.KVv2, path, key string, cas int) {
	t.Helper()
	_, err := kv.Put(context.Background(), path, map[string]any{
		"api_key": key, "kind": "key", "fingerprint": "fp:0000000000000000",
		"current_since": time.Now().UTC().Format(time.RFC3339Nano), "rotation_id": "test",
	}, api.WithCheckAndSet(cas))
	if err != nil {
		t.Fatalf("write %s (cas %d): %v", path, cas, err)
	}
}

func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func want403(t *testing.T, what string, err error) {
	t.Helper()
	if statusOf(err) != http.StatusForbidden {
		t.Errorf("%s: want 403 permission denied, got %v", what, err)
	}
}

// randomKey is a key like the rotator's: 256 random bits, base64url.
func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// lines returns the non-empty lines of a file (none if it does not exist yet).
func lines(path string) []string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func lastLine(path string) string {
	l := lines(path)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

func readEnvFile(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func stripComments(s string) string {
	return regexp.MustCompile(`(?m)\s*#.*$`).ReplaceAllString(s, "")
}

// hclList writes an HCL list of strings.
func hclList(items ...string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

var commandLine = regexp.MustCompile(`(?m)^(\s*command\s*=\s*)\[.*\]`)

// fillAgentConfig reads a variant's agent.hcl, substitutes its placeholders (each must be there), sets the render
// interval to renderInterval and, when command is set, replaces the exec command; no placeholder may be left.
func fillAgentConfig(t *testing.T, variant string, repl map[string]string, command string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("vault-agent", variant, "agent.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if command != "" {
		if n := len(commandLine.FindAllString(s, -1)); n != 1 {
			t.Fatalf("%s: want one exec command line to replace, found %d", variant, n)
		}
		s = commandLine.ReplaceAllLiteralString(s, "  command = "+command)
	}
	interval := `static_secret_render_interval = "30s"`
	if !strings.Contains(s, interval) {
		t.Fatalf("%s: no %s to shorten", variant, interval)
	}
	s = strings.Replace(s, interval, fmt.Sprintf("static_secret_render_interval = %q", renderInterval.String()), 1)
	for k, v := range repl {
		if !strings.Contains(s, k) {
			t.Fatalf("%s: placeholder %s is not in agent.hcl", variant, k)
		}
		s = strings.ReplaceAll(s, k, v)
	}
	if left := regexp.MustCompile(`@[A-Z_]+@`).FindAllString(stripComments(s), -1); len(left) > 0 {
		t.Fatalf("%s: placeholders left after substitution: %v", variant, left)
	}
	return s
}

// agent is a running `vault agent`; it is stopped (process group: SIGTERM, then SIGKILL) when the test ends.
type agent struct {
	name string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	sec  *secrets
	done chan struct{}
}

func startAgent(t *testing.T, bin, name, config string, sec *secrets) *agent {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &agent{name: name, out: &syncbuf.Buffer{}, sec: sec, done: make(chan struct{})}
	a.cmd = exec.Command(bin, "agent", "-config="+path)
	// No VAULT_TOKEN or VAULT_ADDR: the agent logs in with its AppRole at the address in its config.
	a.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start vault agent (%s): %v", name, err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.stop()
		sec.assertAbsent(t, "the output of vault agent ("+name+")", a.out.String())
	})
	return a
}

func (a *agent) stop() {
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
	}
}

// waitFor polls cond every 20 ms until it holds and returns how long that took; it fails the test when the bound
// passes or the agent exits, showing the agent's output with every secret redacted.
func (a *agent) waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	err := wait.For(context.Background(), what+" from vault agent ("+a.name+")", bound, 20*time.Millisecond, func() (bool, error) {
		if cond() {
			return true, nil
		}
		select {
		case <-a.done:
			t.Fatalf("vault agent (%s) exited while waiting for %s:\n%s", a.name, what, a.sec.redact(a.out.String()))
		default:
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, a.sec.redact(a.out.String()))
	}
	return time.Since(start)
}
