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
	cfg, _, err := loadConfig(t, dir, "extra")
	if err != nil || *cfg.Service.APIKey != "k" {
		t.Fatalf("cfg=%v err=%v", cfg, err)
	}
	writeFiles(t, dir, map[string]string{"extra.toml": "x = 1\n"})
	if _, _, err := loadConfig(t, dir, "extra.toml"); err == nil || !strings.Contains(err.Error(), "supported file format") {
		t.Fatalf("want unsupported format error, got %v", err)
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

func TestSetExtension(t *testing.T) {
	for in, want := range map[string]string{
		"config/config": "config/config.yaml", "custom/extra.yml": "custom/extra.yaml", "a.b/c": "a.b/c.yaml",
		"x.conf": "x.yaml", "dir/.hidden": "dir/.hidden.yaml",
	} {
		if got := setExtension(in, "yaml"); got != want {
			t.Errorf("setExtension(%q) = %q, want %q", in, got, want)
		}
	}
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
