package k8s

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/qdrantrotator/rotator/testbed/dockerbed"
)

// PauseImage builds the pod sandbox image with the Docker Engine: testbed/cmd/k8s-pause, static, FROM scratch. Its
// tag (rotk8s-pause:HASH) carries a hash of the binary, so an unchanged one is built once and reused.
func PauseImage(ctx context.Context) (string, error) {
	root := filepath.Join(packageDir(), "..", "..")
	tmp, err := os.MkdirTemp("", "rotk8s-pause-")
	if err != nil {
		return "", fmt.Errorf("pause image: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "pause")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testbed/cmd/k8s-pause")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pause image: go build: %w\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("pause image: %w", err)
	}
	dockerfile := []byte("FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT [\"/pause\"]\n")
	h := sha256.New()
	h.Write(dockerfile)
	h.Write(data)
	tag := "rotk8s-pause:" + hex.EncodeToString(h.Sum(nil))[:12]
	eng, err := dockerbed.New(ctx)
	if err != nil {
		return "", fmt.Errorf("pause image: %w", err)
	}
	defer eng.Close()
	if ok, err := eng.ImageExists(ctx, tag); err != nil || ok {
		return tag, err
	}
	files := []dockerbed.File{{Name: "Dockerfile", Mode: 0o644, Data: dockerfile}, {Name: "pause", Mode: 0o755, Data: data}}
	if err := eng.BuildImage(ctx, tag, map[string]string{"io.qdrant-rotator.testbed": "image"}, files); err != nil {
		return "", err
	}
	return tag, nil
}
