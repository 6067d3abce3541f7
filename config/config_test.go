package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLoadGood(t *testing.T) {
	c, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata")
	if c.Vault.TokenFile != filepath.Join(abs, "vault-token") {
		t.Errorf("token_file = %q, want it resolved against the config's folder", c.Vault.TokenFile)
	}
	prod, err := c.Find("prod")
	if err != nil || prod.Grace.Std() != 5*time.Minute || prod.ReadyTimeout.Std() != 90*time.Second || len(prod.Containers) != 3 {
		t.Errorf("prod = %+v, %v", prod, err)
	}
	search, _ := c.Find("search")
	if prod.ReadOnly != "rotate" || search.ReadOnly != "keep" {
		t.Errorf("read_only = %q, %q; want rotate, keep (default)", prod.ReadOnly, search.ReadOnly)
	}
	if search.Grace.Std() != 60*time.Second || search.StopTimeout.Std() != 30*time.Second {
		t.Errorf("defaults not applied: grace %s stop %s", search.Grace.Std(), search.StopTimeout.Std())
	}
	if search.TLS.CAFile != filepath.Join(abs, "ca.pem") {
		t.Errorf("ca_file = %q", search.TLS.CAFile)
	}
	if _, err := c.Find("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Find(nope) = %v", err)
	}
}

func TestBadConfigs(t *testing.T) {
	base := "deployments:\n  - name: prod\n    mode: env\n    containers: [a]\n"
	cases := []struct{ name, yaml, want string }{
		{"unknown top-level field", base + "extra: 1\n", "field extra not found"},
		{"inline token", "vault:\n  token: hvs.abc\n" + base, "field token not found"},
		{"unknown deployment field", "deployments:\n  - name: prod\n    mode: env\n    containers: [a]\n    api_key: x\n", "field api_key not found"},
		{"no deployments", "vault:\n  mount: secret\n", "deployments: at least one"},
		{"bad name", strings.Replace(base, "prod", "Prod!", 1), `deployments[0] (Prod!).name: "Prod!"`},
		{"duplicate name", base + "  - name: prod\n    mode: env\n    containers: [b]\n", `deployments[1] (prod).name: "prod" is used`},
		{"bad mode", strings.Replace(base, "env", "magic", 1), `deployments[0] (prod).mode: "magic": want env, file or kubernetes`},
		{"file mode without path", strings.Replace(base, "env", "file", 1), "deployments[0] (prod).config_path"},
		{"both containers and label", base + "    label: app=q\n", "set exactly one of containers and label"},
		{"neither containers nor label", "deployments:\n  - name: prod\n    mode: env\n", "set exactly one of containers and label"},
		{"duplicate container", strings.Replace(base, "[a]", "[a, a]", 1), "deployments[0] (prod).containers[1]"},
		{"bad duration", base + "    grace: soon\n", `"soon" is not a duration`},
		{"negative grace", base + "    grace: -5s\n", "deployments[0] (prod).grace: -5s is negative"},
		{"bad url", base + "    urls: {a: 127.0.0.1:6333}\n", "deployments[0] (prod).urls.a"},
		{"url for unknown container", base + "    urls: {z: http://127.0.0.1:1}\n", "urls.z: names no container"},
		{"short lease", "vault:\n  lease_ttl: 1s\n" + base, "vault.lease_ttl: 1s is shorter than 3s"},
		{"approle without secret file", "vault:\n  approle: {role_id: r}\n" + base, "vault.approle.secret_id_file: is required"},
		{"approle and token file", "vault:\n  token_file: t\n  approle: {role_id: r, secret_id_file: s}\n" + base, "token_file and approle exclude each other"},
		{"bad mount", "vault:\n  mount: /\n" + base, "vault.mount"},
		{"bad read_only", base + "    read_only: sometimes\n", `deployments[0] (prod).read_only: "sometimes": want keep or rotate`},
		{"write without read", base + "    keys: {ingest: {read: false, write: true}}\n", "deployments[0] (prod).keys.ingest: read: false"},
		{"collections not a list", base + "    keys: {p: {read: true, collections: products}}\n", "cannot unmarshal !!str `products` into []string"},
		{"bad collection name", base + "    keys: {p: {read: true, collections: [\"a/b\"]}}\n", `deployments[0] (prod).keys.p.collections[0]: "a/b" is not a collection name`},
		{"collection twice", base + "    keys: {p: {read: true, collections: [a, a]}}\n", `keys.p.collections[1]: "a" is listed twice`},
		{"empty collections", base + "    keys: {p: {read: true, collections: []}}\n", "keys.p.collections: is empty"},
		{"duplicate key name", base + "    keys:\n      p: {read: true}\n      p: {read: true}\n", `mapping key "p" already defined`},
		{"bad key name", base + "    keys: {Search API: {read: true}}\n", `keys.Search API: the name "Search API"`},
		{"unknown key field", base + "    keys: {p: {read: true, admin: true}}\n", "field admin not found"},
		{"grace under the lag", base + "    grace: 30s\n    consumers: {agents: {render_interval: 60s, reload: 5s}, jobs: {lag: 10s}}\n",
			"deployments[0] (prod).grace: 30s is shorter than the largest consumer lag, 1m5s of consumer agents (render_interval 1m0s + reload 5s), by 35s"},
		{"consumer without lag", base + "    consumers: {agents: {}}\n", "consumers.agents: set lag, or render_interval"},
		{"six-field cron", base + "    schedule: \"0 0 3 * * *\"\n", `deployments[0] (prod).schedule: schedule "0 0 3 * * *" has 6 fields: use standard 5-field cron`},
		{"bad time zone", base + "    timezone: Mars/Olympus\n", `timezone: "Mars/Olympus" is not a time zone`},
		{"bad window", base + "    windows: [{days: [funday], start: \"02:00\", end: \"05:00\"}]\n", `windows[0]: day "funday"`},
		{"window time", base + "    windows: [{start: \"2am\", end: \"05:00\"}]\n", `windows[0]: time "2am": want HH:MM`},
		{"inline api token", "daemon:\n  tokens: [{name: ops, role: admin, token: abc}]\n" + base, "field token not found"},
		{"token without source", "daemon:\n  tokens: [{name: ops, role: admin}]\n" + base, "daemon.tokens[0]: set exactly one of file, env and vault"},
		{"token bad role", "daemon:\n  tokens: [{name: ops, role: root, env: X}]\n" + base, `daemon.tokens[0].role: "root": want admin or read`},
		{"webhook without secret", "daemon:\n  webhooks: [{url: http://127.0.0.1:9/x}]\n" + base, "daemon.webhooks[0].secret_file: is required"},
		{"tls half a pair", base + "    tls: {cert_file: c.pem}\n", "cert_file and key_file go together"},
		{"cron out of range", base + "    schedule: \"99 * * * *\"\n", `deployments[0] (prod).schedule: schedule "99 * * * *": end of range (99) above maximum (59)`},
		{"cron nonsense", base + "    schedule: \"@fortnightly\"\n", `deployments[0] (prod).schedule: schedule "@fortnightly"`},
		{"every 30s", base + "    schedule: \"@every 30s\"\n", `deployments[0] (prod).schedule: "@every 30s" fires every 30s; scheduled rotations must be at least 1m0s apart`},
		{"every 0s", base + "    schedule: \"@every 0s\"\n", `deployments[0] (prod).schedule: "@every 0s" fires every 1s`},
		{"negative jitter", base + "    jitter: -1m\n", "deployments[0] (prod).jitter: -1m0s is negative"},
		{"ready_timeout 1ns", base + "    ready_timeout: 1ns\n", "deployments[0] (prod).ready_timeout: 1ns is shorter than 1s"},
		{"ready_timeout a day", base + "    ready_timeout: 24h\n", "deployments[0] (prod).ready_timeout: 24h0m0s is longer than 1h0m0s"},
		{"stop_timeout 500ms", base + "    stop_timeout: 500ms\n", "deployments[0] (prod).stop_timeout: 500ms is shorter than 1s"},
		{"negative stop_timeout", base + "    stop_timeout: -3s\n", "deployments[0] (prod).stop_timeout: -3s is shorter than 1s"},
		{"container in two deployments", base + "  - name: staging\n    mode: env\n    containers: [b, a]\n",
			`deployments[1] (staging).containers[1]: container "a" is also in deployment prod`},
		{"jwt ttl under the re-mint bound", base + "    keys: {search: {read: true, ttl: 2m}}\n",
			"deployments[0] (prod).keys.search: ttl 2m0s is too short for the daemon to re-mint the JWT before it expires: want at least 4m30s = 3 × (daemon.poll_interval 30s + ready_timeout 1m0s)"},
		{"key_ttl under the re-mint bound", "daemon:\n  poll_interval: 1m\n" + base + "    ready_timeout: 10s\n    key_ttl: 3m\n    keys: {search: {read: true}, all: {read: true, write: true}}\n",
			"deployments[0] (prod).keys.search: key_ttl 3m0s is too short for the daemon to re-mint the JWT before it expires: want at least 3m30s"},
		{"token env name", "daemon:\n  tokens: [{name: ops, role: admin, env: \"A-B\"}]\n" + base, `daemon.tokens[0].env: "A-B" is not an environment variable name`},
		{"token vault path", "daemon:\n  tokens: [{name: ops, role: admin, vault: \"/x//y\"}]\n" + base, `daemon.tokens[0].vault: "/x//y" is not a path`},
		{"listen without port", "daemon:\n  listen: localhost\n" + base, `daemon.listen: "localhost": want host:port`},
		{"vault address", "vault:\n  address: vault:8200\n" + base, `vault.address: "vault:8200": want an http:// or https:// URL`},
		{"second document", base + "---\n" + base, "parse: line 5: a second YAML document"},
		{"not UTF-8", base + "    label: \xff\n", "parse: line 5: yaml: invalid leading UTF-8 octet"},
		{"control character", base + "    label: a\x01b\n", "parse: line 5: yaml: control characters are not allowed"},
		{"syntax error on the first line", `"`, "parse: line 1: yaml: found unexpected end of stream"},
		{"unknown alias", base + "    label: *nope\n", "parse: line 5: yaml: unknown anchor 'nope' referenced"},
		{"bad !!binary", base + "    label: !!binary '%%%'\n", "parse: line 5: yaml: !!binary value contains invalid base64 data"},
		{"merge of a scalar", base + "    <<: 3\n", "parse: line 5: yaml: map merge requires map or sequence of maps as the value"},
		{"name with a line break", "deployments:\n  - name: \"a\\nb\"\n    mode: env\n    containers: [a]\n", `deployments[0] ("a\nb").name: "a\nb": want 1-63`},
		{"webhook secret missing", "daemon:\n  webhooks: [{url: http://127.0.0.1:9/x, secret_file: /nonexistent/hook.secret}]\n" + base,
			"daemon.webhooks[0].secret_file: open /nonexistent/hook.secret: no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNamedKeysAndLag(t *testing.T) {
	c, err := Parse([]byte(`deployments:
  - name: prod
    mode: env
    containers: [a]
    grace: 70s
    keys:
      admin:      {read: true, write: true}
      search-api: {read: true, write: false}
      products:   {read: true, write: true, collections: [products], ttl: 24h}
    consumers:
      agents: {render_interval: 60s, reload: 5s}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Deployments[0]
	if len(d.Keys) != 3 || d.Keys["products"].Collections[0] != "products" || d.Keys["products"].TTL.Std() != 24*time.Hour || d.KeyTTL.Std() != 720*time.Hour {
		t.Errorf("keys = %+v, key_ttl %s", d.Keys, d.KeyTTL.Std())
	}
	if d.Consumers["agents"].MaxLag() != 65*time.Second {
		t.Errorf("lag = %s", d.Consumers["agents"].MaxLag())
	}
}

func TestLoadMissingFileNamesIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yml")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error = %v", err)
	}
	if err := os.WriteFile(path, []byte("deployments: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error = %v, want it to name the file", err)
	}
}

// TestLoadRefusesWhatTheDaemonWould: an empty file, and files the daemon needs from its start whose content is
// unusable, are refused with the field named.
func TestLoadRefusesWhatTheDaemonWould(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := "deployments:\n  - name: prod\n    mode: env\n    containers: [a]\n"
	write("blank.secret", " \n\t\n")
	write("good.secret", "s3cret\n")
	write("junk.pem", "not a certificate\n")
	write("huge.pem", strings.Repeat("#", 1<<20+1))
	// A pipe nobody writes to: reading it would wait for ever; it is refused at once.
	if err := syscall.Mkfifo(filepath.Join(dir, "hook.fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, yaml, want string }{
		{"empty file", "", "config file " + filepath.Join(dir, "empty file.yml") + " is empty"},
		{"only comments", "# nothing yet\n\n", "is empty"},
		{"blank webhook secret", "daemon:\n  webhooks: [{url: http://127.0.0.1:9/x, secret_file: blank.secret}]\n" + base,
			"daemon.webhooks[0].secret_file: file " + filepath.Join(dir, "blank.secret") + " is empty"},
		{"daemon tls junk", "daemon:\n  tls: {cert_file: junk.pem, key_file: junk.pem}\n" + base, "daemon.tls: cert_file " + filepath.Join(dir, "junk.pem")},
		{"node ca junk", base + "    tls: {ca_file: junk.pem}\n", "deployments[0] (prod).tls.ca_file: " + filepath.Join(dir, "junk.pem") + ": no PEM certificate"},
		{"secret a folder", "daemon:\n  webhooks: [{url: http://127.0.0.1:9/x, secret_file: .}]\n" + base,
			"daemon.webhooks[0].secret_file: " + dir + " is not a regular file"},
		{"secret a pipe", "daemon:\n  webhooks: [{url: http://127.0.0.1:9/x, secret_file: hook.fifo}]\n" + base,
			"daemon.webhooks[0].secret_file: " + filepath.Join(dir, "hook.fifo") + " is not a regular file"},
		{"ca a huge file", base + "    tls: {ca_file: huge.pem}\n", "deployments[0] (prod).tls.ca_file: " + filepath.Join(dir, "huge.pem") + " is larger than 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(tc.name+".yml", tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Load(write("ok.yml", "daemon:\n  webhooks: [{url: http://127.0.0.1:9/x, secret_file: good.secret}]\n"+base)); err != nil {
		t.Errorf("a webhook with a secret: %v", err)
	}
}

func TestSchedulesAccepted(t *testing.T) {
	for _, sched := range []string{"* * * * *", "@every 1m", "@every 90m", "@weekly", "0 3 * * 0"} {
		yml := "deployments:\n  - name: prod\n    mode: env\n    containers: [a]\n    schedule: \"" + sched + "\"\n    timezone: Europe/Berlin\n"
		c, err := Parse([]byte(yml))
		if err != nil {
			t.Errorf("%s: %v", sched, err)
			continue
		}
		if _, ok := c.Deployments[0].ScheduleSpec(); !ok {
			t.Errorf("%s: no schedule spec", sched)
		}
	}
}

func TestKubernetesDeployment(t *testing.T) {
	good := "deployments:\n  - name: prod\n    mode: kubernetes\n    kubernetes:\n      kubeconfig: kube.conf\n      namespace: qdrant\n      statefulset: qdrant\n      secret: qdrant-apikey\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "rotator.yml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	k := c.Deployments[0].Kubernetes
	if k.Layout != LayoutLocalYAML || k.ConfigKey != "local.yaml" || k.ConfigPath != "/qdrant/config/local.yaml" || k.Port != 6333 {
		t.Errorf("defaults: layout %q, config_key %q, config_path %q, port %d", k.Layout, k.ConfigKey, k.ConfigPath, k.Port)
	}
	if k.Kubeconfig != filepath.Join(dir, "kube.conf") {
		t.Errorf("kubeconfig %q: want it resolved against the config's folder", k.Kubeconfig)
	}
	env := strings.Replace(good, "      secret:", "      layout: env\n      secret:", 1)
	if c, err := Parse([]byte(env)); err != nil || c.Deployments[0].Kubernetes.ConfigKey != "" {
		t.Errorf("layout env: %v", err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"no section", "deployments:\n  - name: prod\n    mode: kubernetes\n", "deployments[0] (prod).kubernetes: mode kubernetes needs it"},
		{"containers too", good + "    containers: [a]\n", "deployments[0] (prod).containers: is for the Docker modes"},
		{"both statefulset and selector", good + "      selector: app=qdrant\n", "deployments[0] (prod).kubernetes: set exactly one of statefulset and selector"},
		{"bad selector", strings.Replace(good, "statefulset: qdrant", "selector: app in (q)", 1), `kubernetes.selector: "app in (q)"`},
		{"bad namespace", strings.Replace(good, "namespace: qdrant", "namespace: Qdrant_1", 1), `kubernetes.namespace: "Qdrant_1"`},
		{"no secret", strings.Replace(good, "      secret: qdrant-apikey\n", "", 1), `kubernetes.secret: "": want a Kubernetes object name`},
		{"bad layout", good + "      layout: volume\n", `kubernetes.layout: "volume": want local.yaml or env`},
		{"env with a config key", good + "      layout: env\n      config_key: x\n", "kubernetes.layout: env: config_key and config_path are for layout local.yaml"},
		{"relative config path", good + "      config_path: local.yaml\n", `kubernetes.config_path: "local.yaml"`},
		{"bad port", good + "      port: 70000\n", "kubernetes.port: 70000"},
		{"section in env mode", "deployments:\n  - name: prod\n    mode: env\n    containers: [a]\n    kubernetes: {namespace: q}\n", "deployments[0] (prod).kubernetes: is for mode kubernetes only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
