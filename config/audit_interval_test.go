package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditInterval: daemon.audit_interval defaults to 1h, takes a duration, and is refused below 1m, naming the field.
func TestAuditInterval(t *testing.T) {
	load := func(daemon string) (*Config, error) { return loadWithDaemon(t, daemon) }
	c, err := load("")
	if err != nil || c.Daemon.AuditInterval.Std() != time.Hour {
		t.Fatalf("default: %v, %v; want 1h", c.Daemon.AuditInterval.Std(), err)
	}
	if c, err = load("daemon:\n  audit_interval: 15m\n"); err != nil || c.Daemon.AuditInterval.Std() != 15*time.Minute {
		t.Fatalf("15m: %v, %v", c.Daemon.AuditInterval.Std(), err)
	}
	for _, bad := range []string{"30s", "-1h"} {
		if _, err := load("daemon:\n  audit_interval: " + bad + "\n"); err == nil || !strings.Contains(err.Error(), "daemon.audit_interval") {
			t.Errorf("%s: %v, want an error naming daemon.audit_interval", bad, err)
		}
	}
}

// loadWithDaemon loads a file of one env-mode deployment under the daemon section given ("" for none).
func loadWithDaemon(t *testing.T, daemon string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rotator.yml")
	if err := os.WriteFile(path, []byte(daemon+"deployments:\n  - name: prod\n    mode: env\n    containers: [a]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}
