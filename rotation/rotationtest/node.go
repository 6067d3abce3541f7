package rotationtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qdrantrotator/rotator/rotation"
)

// jwtLeeway is Qdrant's leeway on a JWT's exp.
const jwtLeeway = 30 * time.Second

// Node is a rotation.Node in memory that authenticates as Qdrant does (../shared/specs/qdrant.md §4–5): a request
// is served with any of api_key, alt_api_key or read_only_api_key; with jwt_rbac, an HS256 token signed with either
// read-write key is served until its exp plus 30 s, an expired or badly signed token is refused with 403, anything
// else with 401; a node with no key serves every request (it is open). Configured slots take effect when the node
// starts (Apply), as Qdrant reads its keys only then.
type Node struct {
	name string

	mu         sync.Mutex
	configured rotation.Slots
	running    rotation.Slots
	up         bool
	restarts   int

	// Set these while no other goroutine uses the node (before it is used, or while every user waits).

	// Now is the clock a JWT's exp is judged by (nil: time.Now).
	Now func() time.Time
	// Refuse, when set, makes the node fail to start with the slots it returns true for.
	Refuse func(rotation.Slots) bool
	// LoseKeys, when set, makes the node start with no key for the slots it returns true for (as Qdrant does when it
	// cannot read its config file): it is then open.
	LoseKeys func(rotation.Slots) bool
	// OnApply, when set, is called after each restart, with the node unlocked.
	OnApply func()
}

var _ rotation.Node = (*Node)(nil)

// NewNode returns a running node configured with s.
func NewNode(name string, s rotation.Slots) *Node {
	return &Node{name: name, configured: s, running: s, up: true}
}

// Name implements rotation.Node.
func (n *Node) Name() string { return n.name }

// Method implements rotation.Node.
func (n *Node) Method() string { return "fake restart" }

// Recover implements rotation.Node: a fake restart is never left half-done.
func (n *Node) Recover(context.Context) error { return nil }

// Diagnose implements rotation.Node.
func (n *Node) Diagnose(context.Context) rotation.Diagnosis {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := rotation.Diagnosis{LogTail: []string{"fake " + n.name + " log"}}
	if n.up && n.running.Equal(rotation.Slots{}) {
		d.Causes = append(d.Causes, "the node runs with no key")
	}
	return d
}

// Keys implements rotation.Node: what the node loads when it next starts.
func (n *Node) Keys(context.Context) (rotation.Slots, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.configured, nil
}

// Apply implements rotation.Node: configure s and (re)start the node, whether it ran or not.
func (n *Node) Apply(_ context.Context, s rotation.Slots) error {
	n.mu.Lock()
	n.configured = s
	n.restarts++
	n.startLocked()
	f := n.OnApply
	n.mu.Unlock()
	if f != nil {
		f()
	}
	return nil
}

func (n *Node) startLocked() {
	n.up = n.Refuse == nil || !n.Refuse(n.configured)
	n.running = rotation.Slots{}
	if n.up && (n.LoseKeys == nil || !n.LoseKeys(n.configured)) {
		n.running = n.configured
	}
}

// Stop stops the node as an operator's `docker stop` would.
func (n *Node) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.up = false
}

// Start starts a stopped node with what it is configured with (`docker start`), without counting a restart.
func (n *Node) Start() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.startLocked()
}

// StartOpen restarts the node without its keys, as Qdrant starts after a restart by hand on a config file it cannot
// read: it is open (serves every request) until its next Apply, while Keys still reports what it is configured with.
// It does not count as a restart.
func (n *Node) StartOpen() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.up, n.running = true, rotation.Slots{}
}

// Set changes what the node is configured with and what it runs, as a hand edit followed by a restart would.
func (n *Node) Set(s rotation.Slots) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.configured, n.running = s, s
}

// Up says whether the node's process runs.
func (n *Node) Up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up
}

// Running returns the slots the running process loaded (zero when it is down).
func (n *Node) Running() rotation.Slots {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.up {
		return rotation.Slots{}
	}
	return n.running
}

// Configured returns the slots the node loads when it next starts.
func (n *Node) Configured() rotation.Slots {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.configured
}

// Restarts counts the node's restarts by Apply.
func (n *Node) Restarts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.restarts
}

// Accepts says whether the running node serves a request made with k.
func (n *Node) Accepts(k rotation.Key) bool { return n.Probe(context.Background(), k) == nil }

// Probe implements rotation.Node.
func (n *Node) Probe(_ context.Context, k rotation.Key) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.up {
		return fmt.Errorf("node %s: %w", n.name, rotation.ErrNodeDown)
	}
	var rw []rotation.Key
	for _, s := range []rotation.Key{n.running.APIKey, n.running.AltAPIKey} {
		if !s.IsZero() {
			rw = append(rw, s)
		}
	}
	if len(rw) == 0 && n.running.ReadOnlyKey.IsZero() {
		return nil // no key configured: Qdrant serves every request
	}
	for _, s := range append(rw, n.running.ReadOnlyKey) {
		if !s.IsZero() && k.Equal(s) {
			return nil
		}
	}
	if n.running.JWTRBAC && len(rw) > 0 && looksLikeJWT(k.Reveal()) {
		return n.checkJWT(k.Reveal(), rw)
	}
	return fmt.Errorf("node %s: %w", n.name, rotation.ErrUnauthorized)
}

// checkJWT tries a parser per read-write key: the first that accepts the token serves the request; a token a parser
// recognised but refused (bad signature, expired) is answered 403.
func (n *Node) checkJWT(token string, secrets []rotation.Key) error {
	now := n.Now
	if now == nil {
		now = time.Now
	}
	var refused error
	for _, s := range secrets {
		_, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(s.Reveal()), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(now), jwt.WithLeeway(jwtLeeway))
		switch {
		case err == nil:
			return nil
		case errors.Is(err, jwt.ErrTokenExpired) || errors.Is(err, jwt.ErrTokenSignatureInvalid):
			refused = fmt.Errorf("node %s: HTTP 403: %w", n.name, rotation.ErrRejected)
		}
	}
	if refused != nil {
		return refused
	}
	return fmt.Errorf("node %s: %w", n.name, rotation.ErrUnauthorized)
}

// looksLikeJWT: three dot-separated parts whose header names HS256, what Qdrant's parser recognises at all.
func looksLikeJWT(token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	raw, err := jwt.NewParser().DecodeSegment(parts[0])
	return err == nil && json.Unmarshal(raw, &h) == nil && h.Alg == "HS256"
}
