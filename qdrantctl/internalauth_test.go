package qdrantctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInternalAuthIsReadFromEnvAndFile(t *testing.T) {
	if v, set := internalAuthFromEnv([]string{"A=1", "qdrant__service__enforce_internal_auth=true"}); !v || !set {
		t.Errorf("env: %v %v, want true set", v, set)
	}
	if v, set := internalAuthFromEnv([]string{"QDRANT__SERVICE__ENFORCE_INTERNAL_AUTH=true", "QDRANT__SERVICE__ENFORCE_INTERNAL_AUTH=false"}); v || !set {
		t.Errorf("env, later wins: %v %v, want false set", v, set)
	}
	if _, set := internalAuthFromEnv([]string{"QDRANT__SERVICE__API_KEY=x"}); set {
		t.Error("env without the variable counted as set")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "local.yaml")
	if err := os.WriteFile(path, []byte("# operator's file\nservice:\n    api_key: k\n    enforce_internal_auth: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := readNodeFile(path); err != nil || !f.internalAuth {
		t.Errorf("file: %v, %v", f.internalAuth, err)
	}
	if f, err := readNodeFile(filepath.Join(dir, "missing.yaml")); err != nil || f.internalAuth {
		t.Errorf("missing file: %v, %v", f.internalAuth, err)
	}
}

func TestCheckEditableRefusesAtPreflight(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "local.yaml")
	if err := os.WriteFile(path, []byte("service: {api_key: k}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkEditable(path, "", readT(t, path)); err == nil || !strings.Contains(err.Error(), "cannot be rewritten key by key") {
		t.Errorf("flow-mapping service: %v, want a refusal", err)
	}
	if err := os.WriteFile(path, []byte("service:\n  api_key: k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkEditable(path, "1000:1000", readT(t, path)); err == nil || !strings.Contains(err.Error(), "cannot be read by the container's user") {
		t.Errorf("root-owned 0600 file, user 1000: %v, want a refusal", err)
	}
	if err := checkEditable(path, "", readT(t, path)); err != nil {
		t.Errorf("editable file: %v", err)
	}
}

func readT(t *testing.T, path string) nodeFile {
	t.Helper()
	f, err := readNodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
