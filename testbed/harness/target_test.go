package harness

import (
	"os"
	"testing"

	"github.com/qdrantrotator/rotator/testbed/conformance"
)

// TestConformanceInContainers runs the whole conformance suite against containers: against the real Qdrant image
// named by QDRANT_IMAGE when it is set (the Engine must already have it: nothing is pulled), else against the
// stand-in image, so the container path is exercised on every run.
func TestConformanceInContainers(t *testing.T) {
	h := NewT(t)
	image := os.Getenv("QDRANT_IMAGE")
	if image == "" {
		image = h.StandinImageT(t)
	} else if ok, err := h.Engine.ImageExists(t.Context(), image); err != nil || !ok {
		t.Fatalf("QDRANT_IMAGE=%s is not an image the Docker Engine has (nothing is pulled): %v", image, err)
	}
	conformance.Run(t, NewTarget(h, image))
}
