package rotation

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// memStore is an in-memory Store with Vault's check-and-set rules.
type memStore struct {
	mu       sync.Mutex
	versions map[string][]KeyRecord // deployment -> versions, index = version-1
	retired  map[string][]int
	journals map[string]Journal
	jversion map[string]int
	// failPublish, when set, fails Publish.
	failPublish error
}

func newMemStore() *memStore {
	return &memStore{versions: map[string][]KeyRecord{}, retired: map[string][]int{}, journals: map[string]Journal{}, jversion: map[string]int{}}
}

func (m *memStore) ReadCurrent(_ context.Context, dep string) (KeyRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.versions[dep]
	if len(v) == 0 {
		return KeyRecord{}, ErrNotFound
	}
	return v[len(v)-1], nil
}

func (m *memStore) Publish(_ context.Context, dep string, rec KeyRecord, cas int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPublish != nil {
		return 0, m.failPublish
	}
	if len(m.versions[dep]) != cas {
		return 0, ErrConflict
	}
	rec.Version = cas + 1
	m.versions[dep] = append(m.versions[dep], rec)
	return rec.Version, nil
}

func (m *memStore) Retire(_ context.Context, dep string, version int, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.retired[dep] = append(m.retired[dep], version)
	return nil
}

func (m *memStore) ReadJournal(_ context.Context, dep string) (Journal, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.journals[dep], m.jversion[dep], nil
}

func (m *memStore) WriteJournal(_ context.Context, dep string, j Journal, cas int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.jversion[dep] != cas {
		return 0, ErrConflict
	}
	m.jversion[dep]++
	m.journals[dep] = j
	return m.jversion[dep], nil
}

// fakeNode is a node whose configured slots take effect at Apply (its restart).
type fakeNode struct {
	name string

	mu         sync.Mutex
	configured Slots
	running    Slots
	up         bool
	restarts   int
	// refuse, when set, makes the node fail to start with slots it returns true for.
	refuse func(Slots) bool
	// onApply, when set, is called after each restart.
	onApply func()
}

func newFakeNode(name string, s Slots) *fakeNode {
	return &fakeNode{name: name, configured: s, running: s, up: true}
}

func (n *fakeNode) Name() string   { return n.name }
func (n *fakeNode) Method() string { return "fake restart" }

func (n *fakeNode) Keys(context.Context) (Slots, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.configured, nil
}

func (n *fakeNode) Apply(_ context.Context, s Slots) error {
	n.mu.Lock()
	n.configured = s
	n.restarts++
	n.up = n.refuse == nil || !n.refuse(s)
	if n.up {
		n.running = s
	}
	f := n.onApply
	n.mu.Unlock()
	if f != nil {
		f()
	}
	return nil
}

func (n *fakeNode) Probe(_ context.Context, k Key) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.up {
		return fmt.Errorf("node %s: %w", n.name, ErrNodeDown)
	}
	if (!n.running.APIKey.IsZero() && k.Equal(n.running.APIKey)) || (!n.running.AltAPIKey.IsZero() && k.Equal(n.running.AltAPIKey)) {
		return nil
	}
	return fmt.Errorf("node %s: 401: %w", n.name, ErrRejected)
}

func (n *fakeNode) accepts(k Key) bool { return n.Probe(context.Background(), k) == nil }
