package main

// End-to-end tests: the rotator's run() against the real Vault dev server, the real Docker Engine and Qdrant stand-in
// containers. Nothing here is faked.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/harness"
	"github.com/qdrantrotator/rotator/testbed/pki"
	"github.com/qdrantrotator/rotator/testbed/prober"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
	"github.com/qdrantrotator/rotator/vaultsync"
)

const deployment = "e2e"

type fixture struct {
	t     testing.TB
	mode  string
	vault *vaultdev.Server
	h     *harness.Harness
	store *vaultsync.Store
	k1    rotation.Key
	r1    rotation.Key // the read-only key, with fixtureOpts.readOnly
	names []string
	// restPorts are the nodes' fixed 127.0.0.1 REST ports (with fixedPorts).
	restPorts []int
	config    string
	dir       string // the config's folder
	scheme    string
	client    *http.Client
	// on are the harnesses of the nodes fixtureOpts.engines puts on another engine, by name.
	on map[string]*harness.Harness
	// urlOf, when set, finds a node's URL instead of the harness (the pods of the Kubernetes tests).
	urlOf func(ctx context.Context, name string) (string, error)

	mu      sync.Mutex
	outputs bytes.Buffer // everything the rotator printed, for leak checks
}

type fixtureOpts struct {
	nodes int
	mode  string
	// env adds environment variables per node index (fault knobs).
	env map[int][]string
	// noPublish leaves Vault without a key (for adopt).
	noPublish bool
	// extra is appended to the deployment's config.
	extra string
	// tls serves the nodes and Vault over HTTPS.
	tls bool
	// grace is the deployment's grace period (default 1s).
	grace string
	// readOnly gives the nodes a read-only key and the deployment read_only: rotate.
	readOnly bool
	// top is added to the config before `deployments:` (a daemon section).
	top string
	// cluster makes the nodes peers of one stand-in cluster (node 0 founds it, the others join it); internalAuth
	// sets enforce_internal_auth on every peer.
	cluster, internalAuth bool
	// readyTimeout is the deployment's ready_timeout (default 30s).
	readyTimeout string
	// user runs the nodes as this user ("uid:gid"), their storage folders owned by it.
	user string
	// fixedPorts publishes each node's REST port on a fixed 127.0.0.1 port that stays across restarts and recreates
	// (f.restPorts), as a proxy in front of the nodes needs.
	fixedPorts bool
	// fileMode is the mode of each node's local.yaml in file mode (default 0600), owned by root as an operator
	// running the rotator as root would have written it.
	fileMode os.FileMode
	// engines starts node i with this harness, on its Docker Engine (a second engine), instead of the fixture's.
	engines map[int]*harness.Harness
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, mode: o.mode, h: harness.NewT(t), scheme: "http",
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	dir := t.TempDir()
	var nodeEnv, binds []string
	if o.tls {
		f.vault = vaultdev.StartTLST(t)
		t.Setenv("VAULT_CACERT", f.vault.CACert) // the rotator and the fixture find Vault's CA the standard way
		p, err := pki.New()
		if err != nil {
			t.Fatal(err)
		}
		// Mounted, not copied into the container: a recreated container keeps only what is mounted.
		tlsDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(tlsDir, "cert.pem"), p.CertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tlsDir, "key.pem"), p.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		binds = []string{tlsDir + ":/qdrant/tls:ro"}
		nodeEnv = []string{"QDRANT__SERVICE__ENABLE_TLS=true"}
		if err := os.WriteFile(filepath.Join(dir, "ca.pem"), p.CAPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(p.CAPEM)
		f.client.Transport = &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}
		f.scheme = "https"
		o.extra += "    tls: {ca_file: ca.pem}\n"
	} else {
		f.vault = vaultdev.StartT(t)
	}
	image := f.h.StandinImageT(t)
	if o.cluster {
		nodeEnv = append(nodeEnv, "QDRANT__CLUSTER__ENABLED=true")
		if o.internalAuth {
			nodeEnv = append(nodeEnv, "QDRANT__SERVICE__ENFORCE_INTERNAL_AUTH=true")
		}
	}
	var err error
	if f.k1, err = rotation.NewKey(); err != nil {
		t.Fatal(err)
	}
	if o.readOnly {
		if f.r1, err = rotation.NewKey(); err != nil {
			t.Fatal(err)
		}
		o.extra += "    read_only: rotate\n"
	}
	tag := randomHex(3)
	var urls []string
	for i := 0; i < o.nodes; i++ {
		name := fmt.Sprintf("qdrant-%s-%d", tag, i)
		var args []string
		if o.cluster {
			args = []string{"--uri", "http://" + name + ":6335"}
			if i > 0 {
				args = append(args, "--bootstrap", "http://"+f.names[0]+":6335")
			}
		}
		// Storage on a bind mount, as any real deployment has it: a recreated container keeps its points.
		storage := t.TempDir()
		if o.user != "" {
			uid, gid, _ := strings.Cut(o.user, ":")
			if err := os.Chown(storage, atoiT(t, uid), atoiT(t, cmp.Or(gid, "0"))); err != nil {
				t.Fatal(err)
			}
		}
		spec := harness.NodeSpec{Args: args, Name: name, Image: image, Env: append(append([]string(nil), nodeEnv...), o.env[i]...), Scheme: f.scheme,
			Binds: append([]string{storage + ":/qdrant/storage"}, binds...), User: o.user}
		if o.fixedPorts {
			spec.RESTHostPort = freePort(t)
			f.restPorts = append(f.restPorts, spec.RESTHostPort)
		}
		switch o.mode {
		case "env":
			spec.Env = append(spec.Env, "QDRANT__SERVICE__API_KEY="+f.k1.Reveal())
			if o.readOnly {
				spec.Env = append(spec.Env, "QDRANT__SERVICE__READ_ONLY_API_KEY="+f.r1.Reveal())
			}
		case "file":
			dir := t.TempDir()
			path := filepath.Join(dir, "local.yaml")
			content := fmt.Sprintf("# node %d: keys managed by the rotator\nlog_level: INFO\nservice:\n  api_key: %s # admin key\n  max_request_size_mb: 32\n", i, f.k1.Reveal())
			if o.readOnly {
				content += "  read_only_api_key: " + f.r1.Reveal() + "\n"
			}
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, cmp.Or(o.fileMode, 0o600)); err != nil {
				t.Fatal(err)
			}
			spec.Binds = append(spec.Binds, path+":/qdrant/config/local.yaml")
		}
		h := f.h
		if other, ok := o.engines[i]; ok {
			h = other
			if f.on == nil {
				f.on = map[string]*harness.Harness{}
			}
			f.on[name] = other
		}
		n := h.StartNodeT(t, spec)
		f.names = append(f.names, name)
		urls = append(urls, fmt.Sprintf("    %s: %s", name, n.URL))
	}
	f.store, err = vaultsync.New(vaultsync.Options{Address: f.vault.Addr, Token: f.vault.Token, Mount: "secret", Prefix: "qdrant"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.noPublish {
		if _, err := f.store.Publish(ctx, deployment, rotation.SlotAdmin, rotation.KeyRecord{Key: f.k1, Since: time.Now(), RotationID: "adopted"}, 0); err != nil {
			t.Fatal(err)
		}
		if o.readOnly {
			if _, err := f.store.Publish(ctx, deployment, rotation.SlotReadOnly, rotation.KeyRecord{Key: f.r1, Since: time.Now(), RotationID: "adopted"}, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(f.vault.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`vault:
  address: %s
  token_file: token
  mount: secret
  prefix: qdrant
  lease_ttl: 3s
%sdeployments:
  - name: %s
    mode: %s
    containers: [%s]
    grace: %s
    ready_timeout: %s
    stop_timeout: 10s
`, f.vault.Addr, o.top, deployment, o.mode, strings.Join(f.names, ", "), cmp.Or(o.grace, "1s"), cmp.Or(o.readyTimeout, "30s"))
	if o.mode == "file" {
		cfg += "    config_path: /qdrant/config/local.yaml\n"
	}
	cfg += o.extra
	f.dir = dir
	f.config = filepath.Join(dir, "rotator.yml")
	if err := os.WriteFile(f.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// rotator runs one rotator command in-process and returns its exit code and output.
func (f *fixture) rotator(args ...string) (int, string) {
	f.t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{args[0], "--config", f.config}, args[1:]...), func(string) string { return "" }, &out, &errOut)
	f.mu.Lock()
	f.outputs.Write(out.Bytes())
	f.outputs.Write(errOut.Bytes())
	f.mu.Unlock()
	return code, out.String() + errOut.String()
}

func (f *fixture) current() rotation.KeyRecord {
	f.t.Helper()
	cur, err := f.store.ReadCurrent(context.Background(), deployment, rotation.SlotAdmin)
	if err != nil {
		f.t.Fatal(err)
	}
	return cur
}

func (f *fixture) journal() rotation.Journal {
	f.t.Helper()
	j, _, err := f.store.ReadJournal(context.Background(), deployment)
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

func (f *fixture) url(name string) string {
	f.t.Helper()
	u, err := f.nodeURL(context.Background(), name)
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// nodeURL is a node's base URL as it is now.
func (f *fixture) nodeURL(ctx context.Context, name string) (string, error) {
	if f.urlOf != nil {
		return f.urlOf(ctx, name)
	}
	return f.harnessOf(name).URLOf(ctx, name, f.scheme)
}

// harnessOf is the harness that started a node.
func (f *fixture) harnessOf(name string) *harness.Harness {
	if h, ok := f.on[name]; ok {
		return h
	}
	return f.h
}

// call makes one authenticated request and returns the status.
func (f *fixture) call(method, url, key, body string) int {
	f.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("api-key", key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, req.URL.Path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// writePoints creates a collection on every node and writes n points with wait=true.
func (f *fixture) writePoints(n int) {
	f.t.Helper()
	var pts []string
	for i := 1; i <= n; i++ {
		pts = append(pts, fmt.Sprintf(`{"id":%d,"vector":[0.1,0.2,0.3,%d],"payload":{"i":%d}}`, i, i, i))
	}
	for _, name := range f.names {
		u := f.url(name)
		if s := f.call(http.MethodPut, u+"/collections/c", f.k1.Reveal(), `{"vectors":{"size":4,"distance":"Dot"}}`); s != 200 {
			f.t.Fatalf("create collection on %s: HTTP %d", name, s)
		}
		if s := f.call(http.MethodPut, u+"/collections/c/points?wait=true", f.k1.Reveal(), `{"points":[`+strings.Join(pts, ",")+`]}`); s != 200 {
			f.t.Fatalf("upsert on %s: HTTP %d", name, s)
		}
	}
}

// countPoints returns each node's point count, read with key.
func (f *fixture) countPoints(key rotation.Key) map[string]int {
	f.t.Helper()
	out := map[string]int{}
	for _, name := range f.names {
		req, _ := http.NewRequest(http.MethodPost, f.url(name)+"/collections/c/points/count", strings.NewReader(`{"exact":true}`))
		req.Header.Set("api-key", key.Reveal())
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.client.Do(req)
		if err != nil {
			f.t.Fatal(err)
		}
		var body struct {
			Result struct{ Count int } `json:"result"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		out[name] = body.Result.Count
	}
	return out
}

// assertKeys checks with GET /collections that every node accepts accept and refuses (401) refuse.
func (f *fixture) assertKeys(accept rotation.Key, refuse ...rotation.Key) {
	f.t.Helper()
	for _, name := range f.names {
		u := f.url(name) + "/collections"
		if s := f.call(http.MethodGet, u, accept.Reveal(), ""); s != 200 {
			f.t.Errorf("node %s answers HTTP %d to the key it should accept", name, s)
		}
		for _, k := range refuse {
			if s := f.call(http.MethodGet, u, k.Reveal(), ""); s != 401 {
				f.t.Errorf("node %s answers HTTP %d to a key it should refuse (want 401)", name, s)
			}
		}
	}
}

// startProber probes every node about every 50 ms with the admin key Vault's consumer path holds at that moment.
func (f *fixture) startProber() *prober.Prober { return f.startSlotProber(rotation.SlotAdmin) }

// startSlotProber probes with the credential of one slot's consumer path.
func (f *fixture) startSlotProber(slot rotation.Slot) *prober.Prober {
	return f.startProberWith(func(ctx context.Context) (string, error) {
		cur, err := f.store.ReadCurrent(ctx, deployment, slot)
		return cur.Key.Reveal(), err
	})
}

// startProberWith probes with the credential key returns at each round.
func (f *fixture) startProberWith(key func(context.Context) (string, error)) *prober.Prober {
	p := &prober.Prober{
		Interval: 50 * time.Millisecond,
		Client:   f.client,
		Key:      key,
		Nodes: func(ctx context.Context) (map[string]string, error) {
			out := map[string]string{}
			for _, name := range f.names {
				if u, err := f.nodeURL(ctx, name); err == nil {
					out[name] = u
				}
			}
			return out, nil
		},
	}
	p.Start(context.Background())
	return p
}

// assertNoLeak fails if any key the test knows appears in what the rotator printed.
func (f *fixture) assertNoLeak(keys ...rotation.Key) {
	f.t.Helper()
	f.mu.Lock()
	out := f.outputs.String()
	f.mu.Unlock()
	for i, k := range append(keys, f.k1, f.r1) {
		if !k.IsZero() && strings.Contains(out, k.Reveal()) {
			f.t.Errorf("key %d appears in the rotator's output", i)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestRotationOverTLS rotates a node served over HTTPS, checked with the deployment's CA file, with Vault itself
// over HTTPS and found through the standard VAULT_CACERT.
func TestRotationOverTLS(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", tls: true})
	if !strings.HasPrefix(f.vault.Addr, "https://") || !strings.HasPrefix(f.url(f.names[0]), "https://") {
		t.Fatalf("not TLS: vault %s, node %s", f.vault.Addr, f.url(f.names[0]))
	}
	f.rotateUnderProbe(5)
}

// rotateUnderProbe writes points to every node, rotates while a prober plays a client holding Vault's current key,
// and checks that no request was rejected, that Vault holds a new key (version 2) every node accepts while refusing
// the old one, and that every point is still there. It returns Vault's current key and the rotator's output.
func (f *fixture) rotateUnderProbe(points int) (rotation.KeyRecord, string) {
	t := f.t
	t.Helper()
	f.writePoints(points)
	p := f.startProber()
	code, out := f.rotator("rotate")
	res := p.Stop()
	if code != exitOK {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	t.Logf("prober: %s", res)
	if res.Rejected != 0 {
		t.Errorf("the prober saw %d rejections: %v", res.Rejected, res.Rejections)
	}
	if res.Accepted < 20 {
		t.Errorf("the prober made only %d accepted calls; the zero-rejection claim needs traffic", res.Accepted)
	}
	cur := f.current()
	if cur.Key.Equal(f.k1) || cur.Version != 2 {
		t.Fatalf("Vault's current key is version %d; want a new key at version 2", cur.Version)
	}
	f.assertKeys(cur.Key, f.k1)
	for name, n := range f.countPoints(cur.Key) {
		if n != points {
			t.Errorf("node %s has %d points after the rotation, want %d", name, n, points)
		}
	}
	return cur, out
}

// TestRotationZeroRejections rotates three nodes, in env mode and in file mode, while a prober plays a client that
// always holds Vault's current key: no request may be rejected, and every point written before is still there.
func TestRotationZeroRejections(t *testing.T) {
	for _, mode := range []string{"env", "file"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{nodes: 3, mode: mode})
			cur, out := f.rotateUnderProbe(25)
			for _, phase := range []string{"staging", "publishing", "grace", "promoting", "retiring"} {
				if !strings.Contains(out, phase) {
					t.Errorf("progress output never shows phase %s", phase)
				}
			}
			if j := f.journal(); j.Phase != rotation.PhaseDone || j.Owner != "" {
				t.Errorf("journal phase %s owner %q, want done and unlocked", j.Phase, j.Owner)
			}
			if mode == "file" {
				f.assertFileKept()
			}
			f.assertNoLeak(cur.Key, f.journal().PendingKey)
		})
	}
}

// TestReadOnlyRotation rotates the read-only key with the admin key (read_only: rotate): a read-only client that
// follows Vault's read-only path is never refused, though every node changes its read-only key.
func TestReadOnlyRotation(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 3, mode: "file", readOnly: true})
	admin := f.startProber()
	readOnly := f.startSlotProber(rotation.SlotReadOnly)
	code, out := f.rotator("rotate")
	ra, rr := admin.Stop(), readOnly.Stop()
	if code != exitOK {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	t.Logf("admin prober: %s; read-only prober: %s", ra, rr)
	if ra.Rejected+rr.Rejected != 0 {
		t.Errorf("rejections: admin %v, read-only %v", ra.Rejections, rr.Rejections)
	}
	if rr.Accepted < 20 || rr.KeyErrors > 0 {
		t.Errorf("read-only prober: %s", rr)
	}
	ro, err := f.store.ReadCurrent(context.Background(), deployment, rotation.SlotReadOnly)
	if err != nil || ro.Kind != rotation.CredentialKey || ro.Key.Equal(f.r1) {
		t.Fatalf("read-only record after the rotation: kind %s, err %v", ro.Kind, err)
	}
	for _, name := range f.names {
		u := f.url(name)
		if s := f.call(http.MethodGet, u+"/collections", ro.Key.Reveal(), ""); s != 200 {
			t.Errorf("%s: new read-only key gets HTTP %d", name, s)
		}
		if s := f.call(http.MethodPut, u+"/collections/x", ro.Key.Reveal(), `{}`); s != 403 {
			t.Errorf("%s: new read-only key may write (HTTP %d, want 403)", name, s)
		}
		if s := f.call(http.MethodGet, u+"/collections", f.r1.Reveal(), ""); s != 401 {
			t.Errorf("%s: old read-only key gets HTTP %d, want 401", name, s)
		}
	}
	f.assertKeys(f.current().Key, f.k1)
	if code, out := f.rotator("verify"); code != exitOK || !strings.Contains(out, "read-only credential") {
		t.Errorf("verify exited %d:\n%s", code, out)
	}
	j := f.journal()
	f.assertNoLeak(f.current().Key, ro.Key, j.Bridge)
}

// assertFileKept checks that file mode kept the rest of each config file and its comments.
func (f *fixture) assertFileKept() {
	f.t.Helper()
	for _, name := range f.names {
		info, err := f.h.Engine.Inspect(context.Background(), name)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, m := range info.Mounts {
			if m.Destination != "/qdrant/config/local.yaml" {
				continue
			}
			data, err := os.ReadFile(m.Source)
			if err != nil {
				f.t.Fatal(err)
			}
			for _, want := range []string{"# node ", "log_level: INFO", "max_request_size_mb: 32", "# admin key"} {
				if !strings.Contains(string(data), want) {
					f.t.Errorf("%s lost %q", m.Source, want)
				}
			}
			if strings.Contains(string(data), "alt_api_key") {
				f.t.Errorf("%s keeps alt_api_key after promotion", m.Source)
			}
			st, _ := os.Stat(m.Source)
			if st.Mode().Perm() != 0o600 {
				f.t.Errorf("%s has mode %v, want 0600", m.Source, st.Mode().Perm())
			}
			// No copy, backup or temporary file beside it, and none holding the retired key.
			entries, err := os.ReadDir(filepath.Dir(m.Source))
			if err != nil {
				f.t.Fatal(err)
			}
			for _, e := range entries {
				other := filepath.Join(filepath.Dir(m.Source), e.Name())
				if e.Name() != filepath.Base(m.Source) {
					f.t.Errorf("%s left beside the config file (want no .prev, no temporary file)", other)
				}
				if b, err := os.ReadFile(other); err == nil && strings.Contains(string(b), f.k1.Reveal()) {
					f.t.Errorf("%s still holds the retired key", other)
				}
			}
		}
	}
}

func atoiT(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
