package rotation

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// memStore is an in-memory Store with Vault's check-and-set rules.
type memStore struct {
	mu       sync.Mutex
	versions map[string][]KeyRecord // deployment/slot -> versions, index = version-1
	retired  map[string][]int       // deployment/slot -> retired versions
	journals map[string]Journal
	jversion map[string]int
	// onPublish, when set, sees every published record.
	onPublish func(Slot, KeyRecord)
	// sinceSkew shifts the time stored with each published record (a writer whose clock disagrees with ours).
	sinceSkew time.Duration
}

func newMemStore() *memStore {
	return &memStore{versions: map[string][]KeyRecord{}, retired: map[string][]int{}, journals: map[string]Journal{}, jversion: map[string]int{}}
}

func (m *memStore) ReadCurrent(_ context.Context, dep string, slot Slot) (KeyRecord, error) {
	dep += "/" + string(slot)
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.versions[dep]
	if len(v) == 0 {
		return KeyRecord{}, ErrNotFound
	}
	return v[len(v)-1], nil
}

func (m *memStore) Publish(_ context.Context, dep string, slot Slot, rec KeyRecord, cas int) (int, error) {
	dep += "/" + string(slot)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.versions[dep]) != cas {
		return 0, ErrConflict
	}
	rec.Version = cas + 1
	rec.Since = rec.Since.Add(m.sinceSkew)
	m.versions[dep] = append(m.versions[dep], rec)
	if m.onPublish != nil {
		m.onPublish(slot, rec)
	}
	return rec.Version, nil
}

func (m *memStore) Retire(_ context.Context, dep string, slot Slot, version int, _ time.Time) error {
	dep += "/" + string(slot)
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
	// loseKeys, when set, makes the node start with no key (as Qdrant does when it cannot read its config file) for
	// slots it returns true for.
	loseKeys func(Slots) bool
	// now is the clock JWT expiry is judged by (the stand-in's rule: an expired JWT is refused).
	now func() time.Time
}

func newFakeNode(name string, s Slots) *fakeNode {
	return &fakeNode{name: name, configured: s, running: s, up: true}
}

func (n *fakeNode) Name() string                  { return n.name }
func (n *fakeNode) Recover(context.Context) error { return nil }
func (n *fakeNode) Method() string                { return "fake restart" }

func (n *fakeNode) Diagnose(context.Context) Diagnosis {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := Diagnosis{LogTail: []string{"fake " + n.name + " log"}}
	if n.running == (Slots{}) && n.up {
		d.Causes = append(d.Causes, "the node runs with no key")
	}
	return d
}

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
		if n.loseKeys != nil && n.loseKeys(s) {
			n.running = Slots{}
		}
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
	rw := keys(n.running.APIKey, n.running.AltAPIKey)
	if len(rw) == 0 && n.running.ReadOnlyKey.IsZero() {
		return nil // no key configured: Qdrant serves every request
	}
	for _, s := range append(rw, keys(n.running.ReadOnlyKey)...) {
		if k.Equal(s) {
			return nil
		}
	}
	if n.running.JWTRBAC {
		// Qdrant's jwt_rbac: an HS256 token signed with either read-write key.
		for _, s := range rw {
			if _, err := jwt.Parse(k.Reveal(), func(*jwt.Token) (any, error) { return []byte(s.Reveal()), nil }, jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(n.now)); err == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("node %s: %w", n.name, ErrUnauthorized)
}

func (n *fakeNode) accepts(k Key) bool { return n.Probe(context.Background(), k) == nil }
