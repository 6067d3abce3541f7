package config

import (
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

// TestMaxParallel: daemon.max_parallel defaults to rotation.DefaultMaxParallel (also when 0), takes 1 to 64, and is
// refused outside that, or when not an integer, naming the field.
func TestMaxParallel(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       Parallel
	}{
		{"unset", "", Parallel(rotation.DefaultMaxParallel)},
		{"zero", "daemon:\n  max_parallel: 0\n", Parallel(rotation.DefaultMaxParallel)},
		{"one", "daemon:\n  max_parallel: 1\n", 1},
		{"eight", "daemon:\n  max_parallel: 8\n", 8},
		{"upper bound", "daemon:\n  max_parallel: 64\n", 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadWithDaemon(t, c.yaml)
			if err != nil || cfg.Daemon.MaxParallel != c.want {
				t.Fatalf("max_parallel %v, %v; want %d", cfg.Daemon.MaxParallel, err, c.want)
			}
		})
	}
	for _, c := range []struct{ name, value string }{
		{"negative", "-1"},
		{"too many", "65"},
		{"not an integer", "2.5"},
		{"a word", "all"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadWithDaemon(t, "daemon:\n  max_parallel: "+c.value+"\n"); err == nil || !strings.Contains(err.Error(), "max_parallel") {
				t.Errorf("%s: %v, want an error naming daemon.max_parallel", c.value, err)
			}
		})
	}
}
