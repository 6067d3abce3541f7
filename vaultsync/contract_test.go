package vaultsync_test

import (
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
	"github.com/qdrantrotator/rotator/vaultsync"
)

// TestStoreKeepsTheContract runs the Store contract the rotator's fake also passes against vaultsync on the real
// Vault dev server: one server, a prefix per subtest.
func TestStoreKeepsTheContract(t *testing.T) {
	srv := vaultdev.StartT(t)
	n := 0
	rotationtest.RunStoreContract(t, func(t *testing.T) rotation.Store {
		n++
		s, err := vaultsync.New(vaultsync.Options{Address: srv.Addr, Token: srv.Token, Mount: "secret", Prefix: "contract-" + string(rune('a'+n))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
