package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Slots are the key settings of one Qdrant node (`service.api_key`, `alt_api_key`, `read_only_api_key`,
// `jwt_rbac`); a zero Key is an unset slot.
type Slots struct {
	APIKey, AltAPIKey, ReadOnlyKey Key
	JWTRBAC                        bool
	// InternalAuth is the node's `service.enforce_internal_auth`: read to choose the plan, never changed.
	InternalAuth bool
	// Unloaded says the node's running process may not have loaded these slots: they are what it will load at its
	// next start, but they changed after it started (several Kubernetes pods share one Secret, so a pod not yet
	// restarted runs with what the Secret held before). A node with Unloaded slots is restarted even when it answers
	// as wanted. Equal does not compare it.
	Unloaded bool
}

// Equal compares every slot.
func (s Slots) Equal(o Slots) bool {
	return s.APIKey.Equal(o.APIKey) && s.AltAPIKey.Equal(o.AltAPIKey) && s.ReadOnlyKey.Equal(o.ReadOnlyKey) && s.JWTRBAC == o.JWTRBAC && s.InternalAuth == o.InternalAuth
}

// Slot names a credential consumers read: the admin key, or the read-only credential.
type Slot string

// Slots consumers read.
const (
	SlotAdmin    Slot = "admin"
	SlotReadOnly Slot = "read-only"
)

// Kind of credential a KeyRecord holds.
const (
	CredentialKey = "key" // a static key of a node slot
	CredentialJWT = "jwt" // a JWT signed with the admin key (Qdrant's jwt_rbac)
)

// Node is one Qdrant node the rotator manages. qdrantctl implements it over Docker.
type Node interface {
	// Name identifies the node (its container name).
	Name() string
	// Method says how Apply changes the node, for plans ("env: recreate container", "file: rewrite PATH, restart").
	Method() string
	// Keys returns the slots the node is configured with (what it loads when it starts). It changes nothing.
	Keys(ctx context.Context) (Slots, error)
	// Recover puts straight what a crash left half-done on the node (e.g. a container swap); the rotator calls it
	// under the lease before any other step.
	Recover(ctx context.Context) error
	// Apply configures the slots and restarts the node; it returns once the node's process has been started again.
	// Applying what is already configured still restarts.
	Apply(ctx context.Context, s Slots) error
	// Probe makes one authenticated call with key. It returns nil when the node accepts the key, an error wrapping
	// ErrRejected when the node answers 401 or 403, an error wrapping ErrNodeDown when the node has stopped, and any
	// other error when the node cannot be reached yet (worth retrying). A 401 wraps ErrUnauthorized.
	Probe(ctx context.Context, key Key) error
	// Diagnose says what may explain a node that is open or will not start: the causes the adapter can see (an
	// unreadable config file, no key configured) and the last lines of the node's own log. It changes nothing.
	Diagnose(ctx context.Context) Diagnosis
}

// Diagnosis is what a node's adapter can tell about why it misbehaves. It never holds a key the rotator knows (the
// rotator masks them), but a log line is the node's own text.
type Diagnosis struct {
	Causes  []string
	LogTail []string
}

// Errors nodes report.
var (
	// ErrRejected: the node answered the key with 401 or 403.
	ErrRejected = errors.New("key rejected")
	// ErrNodeDown: the node's process is not running (it exited or was never started).
	ErrNodeDown = errors.New("node is not running")
	// ErrUnauthorized: the node answered 401, as Qdrant does for a key it does not know. It wraps ErrRejected.
	ErrUnauthorized = fmt.Errorf("%w (HTTP 401)", ErrRejected)
	// ErrOpen: the node accepted a key that was never issued: it runs with no API key and serves every request.
	ErrOpen = errors.New("node is open: it accepted a key that was never issued")
)

// KeyRecord is what consumers read for a deployment's slot: a credential every node accepts.
type KeyRecord struct {
	Key         Key
	Kind        string // CredentialKey or CredentialJWT ("" reads as CredentialKey)
	Fingerprint string
	Since       time.Time // when the key became current
	RotationID  string    // the rotation (or "adopted") that published it
	Version     int       // the store's version of the record
}

// Store keeps keys and journals. vaultsync implements it over Vault KV v2; every write is a check-and-set against
// the version last read (0: must not exist), and a lost race is ErrConflict.
type Store interface {
	// ReadCurrent returns the consumer record of a deployment's slot, or ErrNotFound.
	ReadCurrent(ctx context.Context, deployment string, slot Slot) (KeyRecord, error)
	// Publish writes a new current record (a new version; the previous version stays readable).
	Publish(ctx context.Context, deployment string, slot Slot, rec KeyRecord, cas int) (int, error)
	// Retire labels a version of the consumer record retired and applies the retention to older retired versions.
	Retire(ctx context.Context, deployment string, slot Slot, version int, at time.Time) error
	// ReadJournal returns the journal of a deployment and its version; a deployment never rotated has a zero
	// Journal at version 0.
	ReadJournal(ctx context.Context, deployment string) (Journal, int, error)
	// WriteJournal writes the journal with check-and-set and returns the new version.
	WriteJournal(ctx context.Context, deployment string, j Journal, cas int) (int, error)
}
