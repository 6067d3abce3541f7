package qdrantctl

import "testing"

// TestEngineAddresses: a remote engine's nodes are checked at the engine's host, a local one's at 127.0.0.1, and
// messages show an engine without its user info.
func TestEngineAddresses(t *testing.T) {
	for host, want := range map[string]string{
		"":                            "127.0.0.1",
		"unix:///var/run/docker.sock": "127.0.0.1",
		"tcp://10.0.0.5:2376":         "10.0.0.5",
		"tcp://[fd00::5]:2376":        "fd00::5",
		"ssh://ops@db-3.example:2222": "db-3.example",
		"ssh://ops:secret@db-4/run/d": "db-4",
	} {
		if got := publishHostOf(host); got != want {
			t.Errorf("publishHostOf(%q) = %q, want %q", host, got, want)
		}
	}
	if got := (EngineAddress{Host: "ssh://ops:secret@db-4:22"}).String(); got != "ssh://db-4:22" {
		t.Errorf("String() = %q, want the host without user info", got)
	}
	local, remote := &Engine{publishHost: "127.0.0.1"}, &Engine{publishHost: "10.0.0.5"}
	for _, tc := range []struct {
		e      *Engine
		hostIP string
		want   bool
	}{
		{local, "127.0.0.1", true}, {local, "0.0.0.0", false}, {local, "", false},
		{remote, "10.0.0.5", true}, {remote, "0.0.0.0", true}, {remote, "", true}, {remote, "::", true},
		{remote, "127.0.0.1", false}, {remote, "10.0.0.6", false},
	} {
		if got := tc.e.reaches(tc.hostIP); got != tc.want {
			t.Errorf("engine at %s reaches a port bound to %q: %v, want %v", tc.e.publishHost, tc.hostIP, got, tc.want)
		}
	}
}
