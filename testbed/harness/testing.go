package harness

import (
	"context"
	"testing"
)

// NewT returns a Harness for a test and closes it when the test ends. A test that needs Docker fails (never skips)
// when the Engine cannot be reached.
func NewT(t testing.TB) *Harness { t.Helper(); return NewAtT(t, "") }

// NewAtT is NewT on the Docker Engine at a unix:// host (a test's second engine).
func NewAtT(t testing.TB, host string) *Harness {
	t.Helper()
	ctx := context.Background()
	h, err := NewAt(ctx, host)
	if err != nil {
		t.Fatalf("docker is required: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Errorf("harness cleanup: %v", err)
		}
	})
	return h
}

// StandinImageT builds (or reuses) the stand-in image and returns its tag.
func (h *Harness) StandinImageT(t testing.TB) string {
	t.Helper()
	tag, err := BuildStandinImage(context.Background(), h.Engine)
	if err != nil {
		t.Fatalf("stand-in image: %v", err)
	}
	return tag
}

// StartNodeT starts a node for a test.
func (h *Harness) StartNodeT(t testing.TB, spec NodeSpec) *Node {
	t.Helper()
	n, err := h.StartNode(context.Background(), spec)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	return n
}
