package main

// End-to-end tests with the real docker-compose binary: the compose setup shipped in deploy/compose/ keeps Vault's
// current key through `docker-compose up -d --force-recreate`, and env mode is refused for compose containers before
// anything is changed (compose would recreate them from the compose file and .env, bringing the retired key back).

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/dockerbed"
	"github.com/qdrantrotator/rotator/testbed/harness"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
	"github.com/qdrantrotator/rotator/testbed/wait"
	"github.com/qdrantrotator/rotator/vaultsync"
)

// composeServices are the services of deploy/compose/compose.yaml.
var composeServices = []string{"qdrant-0", "qdrant-1", "qdrant-2"}

// composeProject is one docker-compose project in a temp folder, built from the shipped deploy/compose/ files.
type composeProject struct {
	t       *testing.T
	name    string // the compose project name, unique per test
	dir     string
	files   []string // -f arguments
	image   string
	eng     *dockerbed.Engine
	vault   *vaultdev.Server
	store   *vaultsync.Store
	k1      rotation.Key
	config  string
	client  *http.Client
	outputs bytes.Buffer // everything the rotator and docker-compose printed, for leak checks
}

// newComposeProject writes the shipped compose.yaml, one local.yaml per node and the rotator's config into a temp
// folder, puts K1 in Vault and on the nodes (in local.yaml for mode file, in .env and `environment:` for mode env),
// and starts the project. docker-compose down -v and a sweep by the project's label run when the test ends.
func newComposeProject(t *testing.T, mode string) *composeProject {
	t.Helper()
	ctx := context.Background()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose is required: %v", err)
	}
	if out, err := exec.Command(bin, "version", "--short").CombinedOutput(); err != nil {
		t.Fatalf("docker-compose version: %v\n%s", err, out)
	} else {
		t.Logf("docker-compose %s", strings.TrimSpace(string(out)))
	}
	eng, err := dockerbed.New(ctx)
	if err != nil {
		t.Fatalf("docker is required: %v", err)
	}
	t.Cleanup(func() { eng.Close() })
	image, err := harness.BuildStandinImage(ctx, eng)
	if err != nil {
		t.Fatalf("stand-in image: %v", err)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := &composeProject{t: t, name: "rotcompose" + randomHex(4), dir: t.TempDir(), files: []string{"compose.yaml"}, image: image, eng: eng,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	t.Cleanup(p.down)

	shipped, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p.write("compose.yaml", string(shipped), 0o644)
	if p.k1, err = rotation.NewKey(); err != nil {
		t.Fatal(err)
	}
	for i, svc := range composeServices {
		content := fmt.Sprintf("# node %d of the compose test\nlog_level: INFO\n", i)
		if mode == "file" {
			content += "service:\n  api_key: " + p.k1.Reveal() + "\n"
		}
		p.write(filepath.Join(svc, "local.yaml"), content, 0o600)
	}
	if mode == "env" {
		// The setup the rotator refuses: the key in .env, passed through `environment:` (what docker compose users
		// commonly do), over the same services.
		p.write(".env", "QDRANT_API_KEY="+p.k1.Reveal()+"\n", 0o600)
		override := "services:\n"
		for _, svc := range composeServices {
			override += "  " + svc + ":\n    environment:\n      QDRANT__SERVICE__API_KEY: ${QDRANT_API_KEY}\n"
		}
		p.write("compose.env.yaml", override, 0o644)
		p.files = append(p.files, "compose.env.yaml")
	}

	p.vault = vaultdev.StartT(t)
	p.store, err = vaultsync.New(vaultsync.Options{Address: p.vault.Addr, Token: p.vault.Token, Mount: "secret", Prefix: "qdrant"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.store.Publish(ctx, deployment, rotation.SlotAdmin, rotation.KeyRecord{Key: p.k1, Since: time.Now(), RotationID: "adopted"}, 0); err != nil {
		t.Fatal(err)
	}
	p.config = p.rotatorConfig(root, mode)

	p.compose("up", "-d")
	p.waitAnswering(composeServices...)
	return p
}

// rotatorConfig is deploy/compose/rotator.yml's deployment as shipped, with this test's Vault, project name, mode
// and a 1 s grace.
func (p *composeProject) rotatorConfig(root, mode string) string {
	p.t.Helper()
	shipped, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "rotator.yml"))
	if err != nil {
		p.t.Fatal(err)
	}
	_, deployments, ok := strings.Cut(string(shipped), "\ndeployments:\n")
	if !ok {
		p.t.Fatal("deploy/compose/rotator.yml has no deployments section")
	}
	replace := func(old, new string) {
		if strings.Count(deployments, old) != 1 {
			p.t.Fatalf("deploy/compose/rotator.yml: want %q once", old)
		}
		deployments = strings.Replace(deployments, old, new, 1)
	}
	replace("label: com.docker.compose.project=qdrant ", "label: com.docker.compose.project="+p.name+" ")
	replace("name: compose\n", "name: "+deployment+"\n")
	replace("grace: 60s", "grace: 1s")
	if mode == "env" {
		replace("mode: file ", "mode: env ")
		replace("config_path: /qdrant/config/local.yaml ", "# no config_path ")
	}
	p.write("vault-token", p.vault.Token+"\n", 0o600)
	cfg := fmt.Sprintf("vault:\n  address: %s\n  token_file: vault-token\n  mount: secret\n  prefix: qdrant\n  lease_ttl: 3s\ndeployments:\n%s", p.vault.Addr, deployments)
	p.write("rotator.yml", cfg, 0o600)
	return filepath.Join(p.dir, "rotator.yml")
}

func (p *composeProject) write(rel, content string, mode os.FileMode) {
	p.t.Helper()
	path := filepath.Join(p.dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		p.t.Fatal(err)
	}
}

// compose runs docker-compose on the project and fails the test if it fails.
func (p *composeProject) compose(args ...string) string {
	p.t.Helper()
	start := time.Now()
	out, err := p.run(3*time.Minute, args...)
	if d := time.Since(start); d > 2*time.Second {
		p.t.Logf("docker-compose %s: %s", strings.Join(args, " "), d.Round(time.Millisecond))
	}
	if err != nil {
		p.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (p *composeProject) run(bound time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	full := []string{"--ansi", "never", "-p", p.name}
	for _, f := range p.files {
		full = append(full, "-f", f)
	}
	cmd := exec.CommandContext(ctx, "docker-compose", append(full, args...)...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "QDRANT_IMAGE="+p.image)
	out, err := cmd.CombinedOutput()
	p.outputs.Write(out)
	return string(out), err
}

// down removes the project (containers, network, volumes), then anything still carrying its label.
func (p *composeProject) down() {
	if out, err := p.run(2*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
		p.t.Errorf("docker-compose down: %v\n%s", err, out)
	}
	ctx := context.Background()
	label := "com.docker.compose.project=" + p.name
	containers, err := p.eng.Containers(ctx, label)
	errs := []error{err}
	for _, c := range containers {
		errs = append(errs, p.eng.RemoveContainer(ctx, c.ID))
	}
	networks, err := p.eng.Networks(ctx, label)
	errs = append(errs, err)
	for _, n := range networks {
		errs = append(errs, p.eng.RemoveNetwork(ctx, n.ID))
	}
	volumes, err := p.eng.Volumes(ctx, label)
	errs = append(errs, err)
	for _, v := range volumes {
		errs = append(errs, p.eng.RemoveVolume(ctx, v.ID))
	}
	for _, err := range errs {
		if err != nil {
			p.t.Errorf("compose cleanup: %v", err)
		}
	}
	if len(containers)+len(networks)+len(volumes) > 0 {
		p.t.Errorf("docker-compose down left %d containers, %d networks, %d volumes", len(containers), len(networks), len(volumes))
	}
}

// ids returns the container id of each service, found by the labels docker-compose puts on its containers.
func (p *composeProject) ids() map[string]string {
	p.t.Helper()
	list, err := p.eng.Containers(context.Background(), "com.docker.compose.project="+p.name)
	if err != nil {
		p.t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list {
		svc := c.Labels["com.docker.compose.service"]
		if _, dup := out[svc]; dup {
			p.t.Fatalf("service %s has more than one container", svc)
		}
		out[svc] = c.ID
	}
	if len(out) != len(composeServices) {
		p.t.Fatalf("want one container for each of %v, got %v", composeServices, out)
	}
	return out
}

// urls are the services' REST addresses on 127.0.0.1, looked up now (a recreated container gets another port).
func (p *composeProject) urls() map[string]string {
	p.t.Helper()
	out := map[string]string{}
	for svc, id := range p.ids() {
		port, err := p.eng.HostPort(context.Background(), id, harness.RESTPort)
		if err != nil {
			p.t.Fatal(err)
		}
		out[svc] = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	return out
}

// waitAnswering waits until each service answers GET / (auth-exempt).
func (p *composeProject) waitAnswering(services ...string) {
	p.t.Helper()
	urls := p.urls()
	for _, svc := range services {
		u := urls[svc]
		wait.UntilEvery(p.t, "service "+svc+" to answer on "+u, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
			resp, err := p.client.Get(u + "/")
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return true, nil
		})
	}
}

// status is the HTTP status of an authenticated GET /collections on a node with key.
func (p *composeProject) status(url string, key rotation.Key) int {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/collections", nil)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("api-key", key.Reveal())
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("GET %s/collections: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// assertKeys checks that every node accepts accept (200) and refuses each of refuse (401).
func (p *composeProject) assertKeys(when string, accept rotation.Key, refuse map[string]rotation.Key) {
	p.t.Helper()
	urls := p.urls()
	for _, svc := range composeServices {
		if s := p.status(urls[svc], accept); s != http.StatusOK {
			p.t.Errorf("%s: %s answers HTTP %d to the key it should accept, want 200", when, svc, s)
		}
		for what, k := range refuse {
			if s := p.status(urls[svc], k); s != http.StatusUnauthorized {
				p.t.Errorf("%s: %s answers HTTP %d to the %s key, want 401", when, svc, s, what)
			}
		}
	}
}

// rotator runs one rotator command in-process on the project's config.
func (p *composeProject) rotator(args ...string) (int, string) {
	p.t.Helper()
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(context.Background(), append([]string{args[0], "--config", p.config}, args[1:]...), func(string) string { return "" }, &out, &errOut)
	p.t.Logf("rotator %s: exit %d in %s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	p.outputs.Write(out.Bytes())
	p.outputs.Write(errOut.Bytes())
	return code, out.String() + errOut.String()
}

func (p *composeProject) current() rotation.KeyRecord {
	p.t.Helper()
	cur, err := p.store.ReadCurrent(context.Background(), deployment, rotation.SlotAdmin)
	if err != nil {
		p.t.Fatal(err)
	}
	return cur
}

// assertNoLeak fails if a key appears in anything the rotator or docker-compose printed.
func (p *composeProject) assertNoLeak(keys ...rotation.Key) {
	p.t.Helper()
	for i, k := range append(keys, p.k1) {
		if !k.IsZero() && strings.Contains(p.outputs.String(), k.Reveal()) {
			p.t.Errorf("key %d appears in the output", i)
		}
	}
}

// TestComposeForceRecreateKeepsCurrentKey: with deploy/compose/ (file mode, each node's local.yaml bind-mounted),
// `docker-compose up -d --force-recreate` of one service and then of all of them, after a rotation, leaves every
// node on Vault's current key (200), refusing the retired key and a random one (401). The same project with the key
// in `environment:` (env mode) is refused by rotate with exit code 1, naming compose, before any node is touched.
func TestComposeForceRecreateKeepsCurrentKey(t *testing.T) {
	t.Run("file mode survives recreates", func(t *testing.T) {
		p := newComposeProject(t, "file")
		if code, out := p.rotator("check"); code != exitOK || !strings.Contains(out, "label com.docker.compose.project="+p.name) {
			t.Fatalf("check exited %d:\n%s", code, out)
		}
		random, err := rotation.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		p.assertKeys("before the rotation", p.k1, map[string]rotation.Key{"random": random})

		code, out := p.rotator("rotate")
		if code != exitOK {
			t.Fatalf("rotate exited %d:\n%s", code, out)
		}
		cur := p.current()
		if cur.Key.Equal(p.k1) || cur.Version != 2 {
			t.Fatalf("Vault's current key is version %d; want a new key at version 2", cur.Version)
		}
		refuse := map[string]rotation.Key{"retired": p.k1, "random": random}
		p.assertKeys("after the rotation", cur.Key, refuse)

		// One service recreated by compose from its compose file: it mounts the same host local.yaml.
		before := p.ids()
		p.compose("up", "-d", "--force-recreate", "qdrant-1")
		after := p.ids()
		if after["qdrant-1"] == before["qdrant-1"] || after["qdrant-0"] != before["qdrant-0"] {
			t.Fatalf("--force-recreate qdrant-1 did not recreate exactly qdrant-1: before %v, after %v", before, after)
		}
		p.waitAnswering("qdrant-1")
		p.assertKeys("after recreating qdrant-1", cur.Key, refuse)

		// Every service recreated.
		p.compose("up", "-d", "--force-recreate")
		again := p.ids()
		for _, svc := range composeServices {
			if again[svc] == after[svc] {
				t.Errorf("--force-recreate left %s's container in place", svc)
			}
		}
		p.waitAnswering(composeServices...)
		p.assertKeys("after recreating every service", cur.Key, refuse)
		if code, out := p.rotator("verify"); code != exitOK {
			t.Errorf("verify after the recreates exited %d:\n%s", code, out)
		}
		p.assertNoLeak(cur.Key, random)
	})

	t.Run("env mode refused", func(t *testing.T) {
		p := newComposeProject(t, "env")
		random, err := rotation.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		p.assertKeys("from the environment", p.k1, map[string]rotation.Key{"random": random})
		before := p.ids()
		for _, args := range [][]string{{"rotate", "--dry-run"}, {"rotate"}} {
			code, out := p.rotator(args...)
			if i := strings.Index(out, "rotator rotate:"); i >= 0 {
				t.Logf("refusal: %s", strings.TrimSpace(out[i:]))
			}
			if code != exitError {
				t.Errorf("%s exited %d, want %d (refused):\n%s", strings.Join(args, " "), code, exitError, out)
			}
			for _, want := range []string{"docker compose project \"" + p.name + "\"", "service \"qdrant-0\"", "mode file", "local.yaml"} {
				if !strings.Contains(out, want) {
					t.Errorf("%s: the refusal does not say %q:\n%s", strings.Join(args, " "), want, out)
				}
			}
		}
		// Nothing was touched: the same containers (env mode recreates a node to restart it), still running, still on
		// K1, and Vault still holds K1 at version 1 with no rotation journaled.
		if after := p.ids(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("containers changed: before %v, after %v", before, after)
		}
		for svc, id := range before {
			info, err := p.eng.Inspect(context.Background(), id)
			if err != nil || !info.Running {
				t.Errorf("%s: running=%v, err %v", svc, info.Running, err)
			}
		}
		p.assertKeys("after the refusal", p.k1, map[string]rotation.Key{"random": random})
		if cur := p.current(); !cur.Key.Equal(p.k1) || cur.Version != 1 {
			t.Errorf("Vault's current key changed: version %d", cur.Version)
		}
		j, _, err := p.store.ReadJournal(context.Background(), deployment)
		if err != nil {
			t.Fatal(err)
		}
		if j.RotationID != "" || !j.PendingKey.IsZero() {
			t.Errorf("a rotation was journaled: %s, phase %s", j.RotationID, j.Phase)
		}
		p.assertNoLeak(random)
	})
}
