package rotationtest_test

import (
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

func TestStoreFakeKeepsTheContract(t *testing.T) {
	rotationtest.RunStoreContract(t, func(*testing.T) rotation.Store { return rotationtest.NewStore() })
}

func TestNodeFakeKeepsTheContract(t *testing.T) {
	rotationtest.RunNodeContract(t, func(t *testing.T, s rotation.Slots) rotationtest.NodeUnderTest {
		n := rotationtest.NewNode("fake-"+t.Name(), s)
		return rotationtest.NodeUnderTest{Node: n, Stop: func(*testing.T) { n.Stop() }}
	})
}
