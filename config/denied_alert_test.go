package config

import (
	"strings"
	"testing"
	"time"
)

// TestDeniedAlert: daemon.denied_alert defaults to 20 refusals in 5m, takes both fields, and refuses a threshold
// below 1 or a window outside 1s..24h, naming the field.
func TestDeniedAlert(t *testing.T) {
	load := func(daemon string) (*Config, error) { return loadWithDaemon(t, daemon) }
	c, err := load("")
	if err != nil || c.Daemon.DeniedAlert.Threshold != 20 || c.Daemon.DeniedAlert.Window.Std() != 5*time.Minute {
		t.Fatalf("default: %+v, %v; want 20 in 5m", c.Daemon.DeniedAlert, err)
	}
	c, err = load("daemon:\n  denied_alert: {threshold: 3, window: 30s}\n")
	if err != nil || c.Daemon.DeniedAlert.Threshold != 3 || c.Daemon.DeniedAlert.Window.Std() != 30*time.Second {
		t.Fatalf("3 in 30s: %+v, %v", c.Daemon.DeniedAlert, err)
	}
	for _, c := range []struct{ name, yaml, field string }{
		{"negative threshold", "{threshold: -1}", "daemon.denied_alert.threshold"},
		{"short window", "{window: 500ms}", "daemon.denied_alert.window"},
		{"long window", "{window: 48h}", "daemon.denied_alert.window"},
		{"unknown field", "{treshold: 5}", "treshold"},
	} {
		if _, err := load("daemon:\n  denied_alert: " + c.yaml + "\n"); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.field)
		}
	}
}
