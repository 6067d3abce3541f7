package qdrantctl

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/docker/docker/client"

	"github.com/qdrantrotator/rotator/testbed/enginetape"
)

// TestFileFacts reads a config file's mode, its readability by the container's user, and the settings the review
// needs, without ever returning the key.
func TestFileFacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.yaml")
	content := "service:\n  api_key: secret-key-0123456789\n  enable_tls: true\naudit:\n  enabled: yes\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	ff, tlsOn, auditOn, apiKey, err := fileFacts(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if ff.Mode != 0o644 || !ff.ReadableByContainer || !tlsOn || !auditOn || !apiKey {
		t.Fatalf("facts %+v tls %v audit %v key %v", ff, tlsOn, auditOn, apiKey)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// A user the host cannot resolve reads a 0600 file only if it is its owner: judged at worst, it cannot.
	if ff, _, _, _, _ = fileFacts(path, "qdrant"); ff.ReadableByContainer {
		t.Fatalf("a 0600 file judged readable by a named user: %+v", ff)
	}
	if err := os.WriteFile(path, []byte("log_level: INFO\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, tlsOn, auditOn, apiKey, err = fileFacts(path, ""); err != nil || tlsOn || auditOn || apiKey {
		t.Fatalf("a file without settings: tls %v audit %v key %v %v", tlsOn, auditOn, apiKey, err)
	}
}

func TestEnvSetting(t *testing.T) {
	env := []string{"QDRANT__AUDIT__ENABLED=true", "qdrant__audit__enabled=false", "OTHER=1"}
	if v, set := envSetting(env, envAuditEnabled); v || !set {
		t.Fatalf("later wins, names case-insensitive: %v %v", v, set)
	}
	if _, set := envSetting(env, envEnableTLS); set {
		t.Fatal("unset variable read as set")
	}
}

// TestInspectPorts reads the published ports of a recorded inspect answer: 6333 on 127.0.0.1, 6334 exposed but
// not published (no binding), so not listed.
func TestInspectPorts(t *testing.T) {
	tape, err := enginetape.Load(filepath.Join("testdata", "engine", "recreate.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(enginetape.NewPlayer(tape))
	defer srv.Close()
	e, err := dial(context.Background(), client.WithHost("tcp://"+srv.Listener.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.Inspect(context.Background(), tape.Container)
	if err != nil {
		t.Fatal(err)
	}
	want := []PublishedPort{{ContainerPort: 6333, HostIP: "127.0.0.1", HostPort: 32846}}
	if !slices.Equal(info.Ports, want) {
		t.Fatalf("ports %+v, want %+v", info.Ports, want)
	}
}
