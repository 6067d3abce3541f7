package qdrantctl

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const sampleConfig = `# Qdrant node 0, managed by hand and by the rotator
log_level: INFO

service:
  # keep the REST port
  http_port: 6333
  api_key: old-key # primary
  enable_tls: false

storage:
  storage_path: ./storage # data
`

func TestWriteConfigKeysKeepsTheRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.yaml")
	if err := os.WriteFile(path, []byte(sampleConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: "old-key", AltAPIKey: "new-key"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Qdrant node 0, managed by hand and by the rotator",
		"# keep the REST port",
		"api_key: old-key # primary",
		"alt_api_key: new-key",
		"http_port: 6333",
		"storage_path: ./storage # data",
		"log_level: INFO",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("rewritten file lacks %q:\n%s", want, got)
		}
	}
	keys, err := ReadConfigKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	if keys != (ConfigKeys{APIKey: "old-key", AltAPIKey: "new-key"}) {
		t.Errorf("read back %+v", keys)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	prev, err := os.ReadFile(path + ".prev")
	if err != nil || string(prev) != sampleConfig {
		t.Errorf("previous copy = %q, %v; want the original", prev, err)
	}

	// Promote: the new key becomes primary, the alt slot goes away.
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: "new-key"}); err != nil {
		t.Fatal(err)
	}
	keys, _ = ReadConfigKeys(path)
	if keys != (ConfigKeys{APIKey: "new-key"}) {
		t.Errorf("after promote read back %+v", keys)
	}
	got, _ = os.ReadFile(path)
	if strings.Contains(string(got), "alt_api_key") || strings.Contains(string(got), "old-key") {
		t.Errorf("promoted file still has the old key or the alt slot:\n%s", got)
	}

	// Rollback restores the copy kept by the last write.
	if err := RestorePrevious(path); err != nil {
		t.Fatal(err)
	}
	keys, _ = ReadConfigKeys(path)
	if keys != (ConfigKeys{APIKey: "old-key", AltAPIKey: "new-key"}) {
		t.Errorf("after restore read back %+v", keys)
	}
}

func TestWriteConfigKeysCreatesServiceSection(t *testing.T) {
	for name, content := range map[string]string{
		"missing file":       "",
		"empty file":         "\n",
		"no service section": "log_level: DEBUG\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "local.yaml")
			if content != "" {
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteConfigKeys(path, ConfigKeys{APIKey: "k", ReadOnlyAPIKey: "r"}); err != nil {
				t.Fatal(err)
			}
			keys, err := ReadConfigKeys(path)
			if err != nil || keys != (ConfigKeys{APIKey: "k", ReadOnlyAPIKey: "r"}) {
				t.Errorf("read back %+v, %v", keys, err)
			}
		})
	}
}

func TestJWTRBACIsABoolean(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.yaml")
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: "k", JWTRBAC: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !strings.Contains(string(got), "jwt_rbac: true\n") || strings.Contains(string(got), `"true"`) {
		t.Errorf("jwt_rbac is not written as a YAML boolean:\n%s", got)
	}
	if keys, _ := ReadConfigKeys(path); !keys.JWTRBAC {
		t.Error("jwt_rbac not read back")
	}
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); strings.Contains(string(got), "jwt_rbac") {
		t.Errorf("jwt_rbac off should remove the setting:\n%s", got)
	}
}

func TestConfigKeysErrorsNameTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("- a list\n- not a mapping\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadConfigKeys(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error = %v, want one naming %s", err, path)
	}
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: "k"}); err == nil || !strings.Contains(err.Error(), "not a mapping") {
		t.Errorf("error = %v, want 'not a mapping'", err)
	}
}

func TestWriteConfigKeysKeepsTheOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test changes file owners and needs root (the test machines run as root)")
	}
	path := filepath.Join(t.TempDir(), "local.yaml")
	if err := os.WriteFile(path, []byte(sampleConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 1000, 1000); err != nil { // Qdrant's unprivileged image runs as 1000
		t.Fatal(err)
	}
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: "k"}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 1000 || sys.Gid != 1000 {
		t.Errorf("owner %d:%d after the rewrite, want 1000:1000", sys.Uid, sys.Gid)
	}
}
