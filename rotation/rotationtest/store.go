package rotationtest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// Store is an in-memory rotation.Store with Vault KV v2's check-and-set rules: every consumer record and journal
// write names the version it read (0: must not exist), and a stale one is rotation.ErrConflict.
type Store struct {
	mu       sync.Mutex
	versions map[string][]rotation.KeyRecord // deployment/slot -> versions, index = version-1
	retired  map[string][]int                // deployment/slot -> retired versions, in order
	journals map[string]rotation.Journal
	jversion map[string]int

	// OnPublish, when set, sees every published record (called with the store locked: it must not call the store).
	OnPublish func(rotation.Slot, rotation.KeyRecord)
	// SinceSkew shifts the time stored with each published record (a writer whose clock disagrees with ours).
	SinceSkew time.Duration
}

var _ rotation.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{versions: map[string][]rotation.KeyRecord{}, retired: map[string][]int{}, journals: map[string]rotation.Journal{}, jversion: map[string]int{}}
}

func path(dep string, slot rotation.Slot) string { return dep + "/" + string(slot) }

// ReadCurrent implements rotation.Store.
func (m *Store) ReadCurrent(_ context.Context, dep string, slot rotation.Slot) (rotation.KeyRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.versions[path(dep, slot)]
	if len(v) == 0 {
		return rotation.KeyRecord{}, rotation.ErrNotFound
	}
	return v[len(v)-1], nil
}

// Publish implements rotation.Store.
func (m *Store) Publish(_ context.Context, dep string, slot rotation.Slot, rec rotation.KeyRecord, cas int) (int, error) {
	p := path(dep, slot)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.versions[p]) != cas {
		return 0, rotation.ErrConflict
	}
	rec.Version = cas + 1
	rec.Since = rec.Since.Add(m.SinceSkew)
	m.versions[p] = append(m.versions[p], rec)
	if m.OnPublish != nil {
		m.OnPublish(slot, rec)
	}
	return rec.Version, nil
}

// Retire implements rotation.Store: the version is labelled retired (once, however often it is asked).
func (m *Store) Retire(_ context.Context, dep string, slot rotation.Slot, version int, _ time.Time) error {
	p := path(dep, slot)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.retired[p], version) {
		m.retired[p] = append(m.retired[p], version)
	}
	return nil
}

// ReadJournal implements rotation.Store.
func (m *Store) ReadJournal(_ context.Context, dep string) (rotation.Journal, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneJournal(m.journals[dep]), m.jversion[dep], nil
}

// WriteJournal implements rotation.Store.
func (m *Store) WriteJournal(_ context.Context, dep string, j rotation.Journal, cas int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.jversion[dep] != cas {
		return 0, rotation.ErrConflict
	}
	m.jversion[dep]++
	m.journals[dep] = cloneJournal(j)
	return m.jversion[dep], nil
}

// cloneJournal copies the one slice a journal holds, so a caller's later append cannot reach the stored value (a
// real store hands out a decoded copy each time).
func cloneJournal(j rotation.Journal) rotation.Journal {
	j.NodesDone = slices.Clone(j.NodesDone)
	return j
}

// Versions returns every version of a deployment's slot, oldest first.
func (m *Store) Versions(dep string, slot rotation.Slot) []rotation.KeyRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.versions[path(dep, slot)])
}

// SetVersions replaces every version of a deployment's slot (nil: the slot was never written).
func (m *Store) SetVersions(dep string, slot rotation.Slot, recs []rotation.KeyRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.versions[path(dep, slot)] = slices.Clone(recs)
}

// Retired returns the versions of a deployment's slot labelled retired, in the order they were.
func (m *Store) Retired(dep string, slot rotation.Slot) []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.retired[path(dep, slot)])
}

// JournalVersion returns the version of a deployment's journal.
func (m *Store) JournalVersion(dep string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jversion[dep]
}
