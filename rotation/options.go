package rotation

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Options configure a Rotator.
type Options struct {
	Deployment string
	// Grace is the wait between publishing the new key and dropping the old one.
	Grace time.Duration
	// ReadyTimeout bounds the wait for one node to come back and pass its checks.
	ReadyTimeout time.Duration
	// LeaseTTL is how long the lease holds without renewal (every journal write renews it; a third of it without
	// one renews it on its own).
	LeaseTTL time.Duration
	// ReadOnly rotates the read-only slot too, through a read-JWT bridge so read-only clients see no window; it
	// turns jwt_rbac on on every node. Without it the read-only slot is left as each node has it.
	ReadOnly bool
	// Keys are the named keys, re-minted and published in every rotation once the new admin key is current.
	Keys []NamedKey
	// Cluster treats the nodes as one Qdrant cluster: the preflight refuses an unsafe rolling restart, followers
	// restart before the leader, and each node must be back with every replica Active before the next.
	Cluster bool
	// InternalAuth says the peers run with enforce_internal_auth, authenticating each other with their primary
	// key: the plan takes 3 restarts per node (K1+alt K2, K2+alt K1, K2) instead of 2. A node whose own
	// configuration enforces it gets the same plan without this option.
	InternalAuth bool
	// AcceptDowntime lets a cluster with replication factor 1 rotate anyway.
	AcceptDowntime bool
	// Owner names this rotator in the lease (default: random).
	Owner        string
	Fingerprints Fingerprinter
	Logger       *slog.Logger
	// Observe receives progress events (optional).
	Observe func(Event)
	// Checkpoint is called at each phase boundary after the journal is written, or the change noted for the next
	// write when it only records progress (optional; a test hook).
	Checkpoint func(point string)
	// Clock is the time source (default SystemClock).
	Clock Clock
}

// New checks the options and returns a Rotator.
func New(store Store, nodes []Node, opt Options) (*Rotator, error) {
	if err := ValidateName(opt.Deployment); err != nil {
		return nil, fmt.Errorf("deployment name %w", err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("deployment %s: no nodes", opt.Deployment)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if seen[n.Name()] {
			return nil, fmt.Errorf("deployment %s: node %s is listed twice", opt.Deployment, n.Name())
		}
		seen[n.Name()] = true
	}
	names := map[string]bool{}
	for _, k := range opt.Keys {
		if ValidateName(k.Name) != nil || names[k.Name] {
			return nil, fmt.Errorf("deployment %s: named key %q is invalid or listed twice", opt.Deployment, k.Name)
		}
		if !k.Full && k.TTL <= 0 {
			return nil, fmt.Errorf("deployment %s: named key %s: its JWT needs a positive TTL", opt.Deployment, k.Name)
		}
		names[k.Name] = true
	}
	if opt.Grace < 0 {
		return nil, fmt.Errorf("deployment %s: grace %s is negative", opt.Deployment, opt.Grace)
	}
	if opt.ReadyTimeout <= 0 {
		opt.ReadyTimeout = 60 * time.Second
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = 60 * time.Second
	}
	if opt.Owner == "" {
		opt.Owner = "rotator-" + newID()
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Clock == nil {
		opt.Clock = SystemClock{}
	}
	if opt.Fingerprints.secret == nil {
		return nil, errors.New("rotator: no fingerprinter")
	}
	return &Rotator{store: store, nodes: nodes, opt: opt}, nil
}
