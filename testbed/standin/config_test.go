package standin

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func loadConfig(t *testing.T, dir, configPath string, env ...string) (*Config, []logMsg, error) {
	t.Helper()
	tree, msgs, err := loadMerged(layerSource{dir: dir, configPath: configPath, env: env})
	if err != nil {
		return nil, msgs, err
	}
	cfg, err := decodeConfig(tree)
	return cfg, msgs, err
}

func TestDefaults(t *testing.T) {
	cfg, msgs, err := loadConfig(t, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Service
	if s.Host != "0.0.0.0" || s.HTTPPort != 6333 || s.GRPCPort == nil || *s.GRPCPort != 6334 || !s.EnableCORS ||
		s.EnableTLS || s.APIKey != nil || cfg.Storage.StoragePath != "./storage" || cfg.LogLevel != "INFO" ||
		cfg.Cluster.Enabled || cfg.TLS == nil || cfg.TLS.Cert != "./tls/cert.pem" || cfg.TLS.Key != "./tls/key.pem" {
		t.Fatalf("unexpected defaults: %+v tls=%+v", cfg, cfg.TLS)
	}
	want := []string{"Config file not found: config/config", "Config file not found: config/development"}
	if len(msgs) != 2 || msgs[0].text != want[0] || msgs[1].text != want[1] || msgs[0].level != slog.LevelWarn {
		t.Fatalf("messages = %+v", msgs)
	}
	if newAuthKeys(s) != nil {
		t.Fatal("no keys configured must mean no authentication")
	}
}

func TestLayerPrecedence(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"config/config.yaml":      "service:\n  api_key: from-config\n  http_port: 7001\n  host: 10.0.0.1\n",
		"config/production.yml":   "service:\n  api_key: from-production\n  http_port: 7002\n",
		"config/development.yaml": "service:\n  api_key: from-development\n",
		"config/local.yaml":       "service:\n  api_key: from-local\n",
		"custom/extra.yaml":       "service:\n  read_only_api_key: 12345\n  api_key: from-custom\n",
	})
	cfg, msgs, err := loadConfig(t, dir, "custom/extra.yaml", "RUN_MODE=production")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Fatalf("unexpected messages %+v", msgs)
	}
	s := cfg.Service
	if *s.APIKey != "from-custom" || s.HTTPPort != 7002 || s.Host != "10.0.0.1" || *s.ReadOnlyAPIKey != "12345" {
		t.Fatalf("merge result: api_key=%q port=%d host=%q ro=%q", *s.APIKey, s.HTTPPort, s.Host, *s.ReadOnlyAPIKey)
	}
	// Deep merge: keys not mentioned by later layers survive.
	if s.GRPCPort == nil || *s.GRPCPort != 6334 || !s.EnableCORS {
		t.Fatal("defaults lost by merging")
	}

	// Environment beats every file; names are case-insensitive; values are converted.
	cfg, _, err = loadConfig(t, dir, "custom/extra.yaml", "RUN_MODE=production",
		"qdrant__service__API_KEY=from-env", "QDRANT__SERVICE__HTTP_PORT=7000", "QDRANT__SERVICE__JWT_RBAC=true",
		"QDRANT_URI=http://ignored", "QDRANT__SERVICE__ENABLE_CORS=off", "OTHER=1")
	if err != nil {
		t.Fatal(err)
	}
	s = cfg.Service
	if *s.APIKey != "from-env" || s.HTTPPort != 7000 || s.JWTRBAC == nil || !*s.JWTRBAC || s.EnableCORS {
		t.Fatalf("env layer: %+v", s)
	}
}

func TestConfigPathMissingAndRunModeDefault(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"config/development.yaml": "log_level: DEBUG\n"})
	cfg, msgs, err := loadConfig(t, dir, "nope/custom.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LogLevel != "DEBUG" {
		t.Fatalf("development layer not applied: %q", cfg.LogLevel)
	}
	if len(msgs) != 2 || msgs[0].level != slog.LevelError ||
		msgs[0].text != "Config file via --config-path is not found: nope/custom.yaml" ||
		msgs[1].text != "Config file not found: config/config" {
		t.Fatalf("messages = %+v", msgs)
	}
}

func TestConfigPathWithoutExtension(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"extra.yml": "service:\n  api_key: k\n"})
	cfg, msgs, err := loadConfig(t, dir, "extra")
	if err != nil || *cfg.Service.APIKey != "k" || len(msgs) != 2 {
		t.Fatalf("cfg=%v msgs=%+v err=%v", cfg, msgs, err)
	}
}

// TestOptionalLayersThatCannotBeResolvedAreDropped: config-rs drops an optional file layer whose resolve fails for
// any reason, without an error; Qdrant logs only its own "not found" checks (qdrant.md §2).
func TestOptionalLayersThatCannotBeResolvedAreDropped(t *testing.T) {
	// deny makes reading every path that ends in suffix fail with permission denied, as for a node user that
	// cannot read the file (a root test process could read it whatever its mode).
	deny := func(suffix string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if suffix != "" && strings.HasSuffix(p, suffix) {
				return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrPermission}
			}
			return os.ReadFile(p)
		}
	}
	const key = "service:\n  api_key: from-file\n"
	notFound := func(p string) logMsg { return logMsg{slog.LevelWarn, "Config file not found: " + p} }
	for _, tc := range []struct {
		name       string
		files      map[string]string
		runMode    string
		configPath string
		deny       string // path suffix whose read fails with permission denied
		wantKey    string // "" = no api_key after the merge
		wantMsgs   []logMsg
	}{
		{name: "unreadable local.yaml drops only that layer",
			files:   map[string]string{"config/m.yaml": "service:\n  api_key: from-mode\n", "config/local.yaml": key},
			runMode: "m", deny: "config/local.yaml", wantKey: "from-mode", wantMsgs: []logMsg{notFound("config/config")}},
		{name: "unreadable local.yaml alone leaves no key",
			files:   map[string]string{"config/local.yaml": key},
			runMode: "m", deny: "config/local.yaml", wantMsgs: []logMsg{notFound("config/config"), notFound("config/m")}},
		{name: "local.yaml is a directory",
			files:   map[string]string{"config/local.yaml/x": key},
			runMode: "m", wantMsgs: []logMsg{notFound("config/config"), notFound("config/m")}},
		{name: "local.yml is read when local.yaml is a directory",
			files:   map[string]string{"config/local.yaml/x": "", "config/local.yml": key},
			runMode: "m", wantKey: "from-file", wantMsgs: []logMsg{notFound("config/config"), notFound("config/m")}},
		{name: "an extensionless exact name hides local.yaml",
			files:   map[string]string{"config/local": key, "config/local.yaml": "service:\n  api_key: hidden\n"},
			runMode: "m", wantMsgs: []logMsg{notFound("config/config"), notFound("config/m")}},
		{name: "unreadable RUN_MODE file is reported as not found",
			files:   map[string]string{"config/config.yaml": key, "config/denied.yaml": "service:\n  api_key: x\n"},
			runMode: "denied", deny: "config/denied.yaml", wantKey: "from-file", wantMsgs: []logMsg{notFound("config/denied")}},
		{name: "unreadable --config-path is logged as not found",
			files:   map[string]string{"config/config.yaml": key, "config/m.yaml": "", "denied/extra.yaml": "service:\n  api_key: x\n"},
			runMode: "m", configPath: "denied/extra.yaml", deny: "denied/extra.yaml", wantKey: "from-file",
			wantMsgs: []logMsg{{slog.LevelError, "Config file via --config-path is not found: denied/extra.yaml"}}},
		{name: "--config-path with another extension is dropped",
			files:   map[string]string{"config/config.yaml": key, "config/m.yaml": "", "extra.toml": "service:\n  api_key: x\n"},
			runMode: "m", configPath: "extra.toml", wantKey: "from-file",
			wantMsgs: []logMsg{{slog.LevelError, "Config file via --config-path is not found: extra.toml"}}},
		{name: "a name with a dot gets the extension appended",
			files:   map[string]string{"config/config.yaml": "", "config/prod.eu.yaml": key, "config/prod.yaml": "service:\n  api_key: x\n"},
			runMode: "prod.eu", wantKey: "from-file"},
		{name: "--config-path with .yaml is looked up as .yaml.yaml when missing",
			files:   map[string]string{"config/config.yaml": "", "config/m.yaml": "", "extra.yaml.yml": key},
			runMode: "m", configPath: "extra.yaml", wantKey: "from-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			tree, msgs, err := loadMerged(layerSource{dir: dir, configPath: tc.configPath, env: []string{"RUN_MODE=" + tc.runMode}, readFile: deny(tc.deny)})
			if err != nil {
				t.Fatalf("a layer that cannot be resolved must not fail the start: %v", err)
			}
			cfg, err := decodeConfig(tree)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if cfg.Service.APIKey != nil {
				got = *cfg.Service.APIKey
			}
			if got != tc.wantKey {
				t.Errorf("api_key %q, want %q", got, tc.wantKey)
			}
			if len(msgs) != len(tc.wantMsgs) {
				t.Fatalf("messages %+v, want %+v", msgs, tc.wantMsgs)
			}
			for i := range msgs {
				if msgs[i] != tc.wantMsgs[i] {
					t.Errorf("message %d: %+v, want %+v", i, msgs[i], tc.wantMsgs[i])
				}
			}
		})
	}
}

// TestReadableLayerThatDoesNotParseAbortsStart: a readable optional layer with invalid YAML, several documents or
// a root that is not a mapping fails the start (qdrant.md §2: a parse error aborts startup).
func TestReadableLayerThatDoesNotParseAbortsStart(t *testing.T) {
	for name, content := range map[string]string{
		"invalid YAML":       "service: [unclosed\n",
		"two documents":      "service:\n  api_key: a\n---\nservice:\n  api_key: b\n",
		"null document":      "---\n",
		"sequence root":      "- a\n",
		"scalar root":        "just text\n",
		"null mapping key":   "~: 1\n",
		"sequence as a key":  "? [a, b]\n: 1\n",
		"tab indentation":    "service:\n\tapi_key: a\n",
		"duplicate map keys": "service:\n  api_key: a\n  api_key: b\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"config/local.yaml": content})
			if _, _, err := loadMerged(layerSource{dir: dir}); err == nil || !strings.Contains(err.Error(), "config/local") {
				t.Fatalf("want a parse error naming config/local, got %v", err)
			}
		})
	}
}

// TestLayerBytes: config-rs 0.15.22 reads a layer with String::from_utf8_lossy after skipping a UTF-8 byte order
// mark, so bad bytes do not drop the layer.
func TestLayerBytes(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"config/local.yaml": "\xef\xbb\xbfservice:\n  api_key: k # caf\xe9 \xff\n  read_only_api_key: r\xc3\n"})
	cfg, _, err := loadConfig(t, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.Service.APIKey != "k" || *cfg.Service.ReadOnlyAPIKey != "r\uFFFD" {
		t.Fatalf("api_key %q read_only_api_key %q", *cfg.Service.APIKey, *cfg.Service.ReadOnlyAPIKey)
	}
	for in, want := range map[string]string{
		"ok":           "ok",
		"a\xffb":       "a\uFFFDb",
		"\xe2\x82":     "\uFFFD",             // truncated 3-byte sequence: one replacement
		"\xe2\x82A":    "\uFFFDA",            // maximal subpart, then A
		"\xf0\x80\x80": "\uFFFD\uFFFD\uFFFD", // overlong: each byte on its own
		"\xed\xa0\x80": "\uFFFD\uFFFD\uFFFD", // surrogate
		"\xf4\x8f\xbf": "\uFFFD",             // truncated U+10FFFF
		"\xef\xbf\xbd": "\uFFFD",             // a real U+FFFD stays one
		"\xc3\xa9\xc3": "\u00e9\uFFFD",
		"\x80\x80":     "\uFFFD\uFFFD",
	} {
		if got := string(lossyUTF8([]byte(in))); got != want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseYAMLKeys(t *testing.T) {
	m, err := parseYAMLMap([]byte("1: a\ntrue: b\n1.50: c\n0x10: d\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"1": "a", "true": "b", "1.50": "c", "16": "d"} {
		if m[k] != v {
			t.Errorf("key %q: %#v, want %q (all %v)", k, m[k], v, m)
		}
	}
	if m, err := parseYAMLMap([]byte("# only a comment\n"), "t"); err != nil || len(m) != 0 {
		t.Errorf("comment-only file: %v %v", m, err)
	}
}

func TestBadValuesAbortNamingKey(t *testing.T) {
	for _, tc := range []struct{ env, key string }{
		{"QDRANT__SERVICE__HTTP_PORT=abc", "service.http_port"},
		{"QDRANT__SERVICE__HTTP_PORT=70000", "service.http_port"},
		{"QDRANT__SERVICE__JWT_RBAC=maybe", "service.jwt_rbac"},
		{"QDRANT__SERVICE__ENABLE_TLS=2x", "service.enable_tls"},
		{"QDRANT__CLUSTER__ENABLED=sure", "cluster.enabled"},
	} {
		_, _, err := loadConfig(t, t.TempDir(), "", tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: want error naming %s, got %v", tc.env, tc.key, err)
		}
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"config/local.yaml": "service:\n  api_key: [1, 2]\n"})
	if _, _, err := loadConfig(t, dir, ""); err == nil || !strings.Contains(err.Error(), "service.api_key") {
		t.Fatalf("want error for api_key list, got %v", err)
	}
	// Unknown keys are ignored.
	if _, _, err := loadConfig(t, t.TempDir(), "", "QDRANT__SERVICE__NO_SUCH_KEY=x", "QDRANT__WHATEVER=1"); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyKeysAndJWTWarnings(t *testing.T) {
	cfg, _, err := loadConfig(t, t.TempDir(), "", "QDRANT__SERVICE__API_KEY=", "QDRANT__SERVICE__JWT_RBAC=1")
	if err != nil {
		t.Fatal(err)
	}
	if newAuthKeys(cfg.Service) != nil {
		t.Fatal("an empty api_key must leave authentication disabled")
	}
	got := texts(cfg.warnings())
	want := "Service api_key is set but empty, it is treated as unset and authentication may be disabled|" +
		"JWT RBAC configured but no API key set, JWT RBAC is not enabled"
	if got != want {
		t.Fatalf("warnings:\n%s\nwant\n%s", got, want)
	}
	cfg, _, _ = loadConfig(t, t.TempDir(), "", "QDRANT__SERVICE__API_KEY=short", "QDRANT__SERVICE__JWT_RBAC=true")
	if got := texts(cfg.warnings()); got != "It is highly recommended to use an API key of 32 bytes when JWT RBAC is enabled" {
		t.Fatalf("warnings: %s", got)
	}
	k := newAuthKeys(cfg.Service)
	if k == nil || len(k.jwtSecrets) != 1 {
		t.Fatal("jwt_rbac with a key must enable one JWT secret")
	}
}

func texts(ms []logMsg) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.text)
	}
	return strings.Join(out, "|")
}

func TestFailIfSetKnob(t *testing.T) {
	tree, _, err := loadMerged(layerSource{dir: t.TempDir(), env: []string{"QDRANT__SERVICE__ALT_API_KEY=new", "QDRANT__SERVICE__API_KEY="}})
	if err != nil {
		t.Fatal(err)
	}
	k, err := readKnobs([]string{"STANDIN_FAIL_IF_SET=service.api_key, service.alt_api_key"})
	if err != nil {
		t.Fatal(err)
	}
	if key, ok := k.refusedKey(tree); !ok || key != "service.alt_api_key" {
		t.Fatalf("refusedKey = %q %v", key, ok)
	}
	if _, err := readKnobs([]string{"STANDIN_START_DELAY=soon"}); err == nil {
		t.Fatal("invalid delay accepted")
	}
}

func TestYAMLScalars(t *testing.T) {
	m, err := parseYAMLMap([]byte("a: 0123\nb: yes\nc: \"6333\"\nd: ~\ne: 0x1F\nf: 1.5\ng: True\nh: 0o17\ni: 1_000\nj: &x k\nl: *x\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": int64(123), "b": "yes", "c": "6333", "d": nil, "e": int64(31), "f": 1.5, "g": true,
		"h": int64(15), "i": "1_000", "j": "k", "l": "k"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: got %#v, want %#v", k, m[k], v)
		}
	}
	if _, err := parseYAMLMap([]byte("- a\n- b\n"), "t"); err == nil {
		t.Error("a sequence document must be rejected")
	}
	if m, err := parseYAMLMap([]byte(""), "t"); err != nil || len(m) != 0 {
		t.Errorf("empty document: %v %v", m, err)
	}
}
