// Package rotationtest holds what every test of a rotation.Store or rotation.Node shares: one in-memory fake per
// interface (Store, Node) and the contract suites (RunStoreContract, RunNodeContract) that every implementation
// passes — the fakes here, vaultsync on a real Vault dev server, and qdrantctl nodes on stand-in containers — so a
// fake cannot drift from what the real adapters do.
package rotationtest
