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
	dep := "deployments:\n  - name: prod\n    mode: env\n    containers: [a]\n"
	load := func(daemon string) (*Config, error) {
		path := filepath.Join(t.TempDir(), "rotator.yml")
		if err := os.WriteFile(path, []byte(daemon+dep), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(path)
	}
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
