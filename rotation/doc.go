// Package rotation is the domain of the Qdrant key rotator: keys and their fingerprints, and (in later work) the
// rotation state machine, its phases and invariants. It declares the interfaces it needs and imports no Vault SDK,
// no Docker SDK and no config.
package rotation
