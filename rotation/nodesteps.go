package rotation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// eachNode moves the nodes one at a time to t, checking each before the next. Then the journal moves to next.
func (h *holder) eachNode(ctx context.Context, t target, next Phase) error {
	step := t.step
	// settled are every node's views from the settle check that just passed after the previous node (nil before the
	// first): the next node's ordering and its others-settled check use them instead of asking every peer again.
	var settled map[string]ClusterView
	for {
		var remaining []Node
		for _, n := range h.nodes {
			if !h.lease.journal().done(n.Name()) {
				remaining = append(remaining, n)
			}
		}
		if len(remaining) == 0 {
			break
		}
		order, leader := h.orderNodes(ctx, remaining, t.accept[0], settled)
		n := order[0]
		if n.Name() == leader {
			h.emitJ(h.lease.journal(), Event{Step: step, Node: n.Name(), Message: "the cluster's leader, restarted after its followers"})
		}
		// A stop request (SIGTERM) is honoured here, between nodes: a node step once begun is finished, so no
		// node is left half-changed.
		if err := context.Cause(ctx); err != nil {
			return err
		}
		// Written by the fence right before the node changes (with the nodes done before it), not apart.
		h.noteJournal(func(j *Journal) { j.Node = n.Name() })
		h.checkpoint(step + ":" + n.Name() + ":begin")
		stepCtx := context.WithoutCancel(ctx)
		h.othersSettledNow = settled != nil
		err := h.moveNode(stepCtx, h.lease.journal(), n, t)
		h.othersSettledNow = false
		if err != nil {
			return fmt.Errorf("%s node %s: %w", step, n.Name(), err)
		}
		if h.opt.Cluster {
			if settled, err = h.waitSettled(stepCtx, "after node "+n.Name()+" restarted", t.accept[0], h.nodes...); err != nil {
				return fmt.Errorf("%s node %s: %w", step, n.Name(), err)
			}
		}
		// Progress only: the next node's fence writes it (a crash before finds this node already done).
		h.noteJournal(func(j *Journal) { j.markDone(n.Name()) })
		h.checkpoint(step + ":" + n.Name() + ":done")
	}
	// Progress only: the next phase writes it before its first side effect.
	h.noteJournal(func(j *Journal) { j.Phase, j.NodesDone, j.Node = next, nil, "" })
	h.checkpoint(step + "d")
	return nil
}

// moveNode gives one node the slots of t unless it already has them and answers as wanted, restarts it, and checks
// it.
func (h *holder) moveNode(ctx context.Context, j Journal, n Node, t target) error {
	step, accept, refuse := t.step, t.accept, t.refuse
	have, err := n.Keys(ctx)
	if err != nil {
		return err
	}
	want := t.edit(have)
	answered := h.answers(ctx, n, accept, refuse)
	if have.Equal(want) && !have.Unloaded && answered == nil {
		if err := h.refusesStrangers(ctx, n); err != nil {
			return err // a restart with the same configuration would not close it
		}
		h.emitJ(j, Event{Step: step, Node: n.Name(), Message: "already done"})
		return nil
	}
	if errors.Is(answered, ErrNodeDown) {
		h.emitJ(j, Event{Step: step, Node: n.Name(), Message: "the node was found stopped; the rotator starts it"})
		h.rep.StartedNodes = append(h.rep.StartedNodes, n.Name())
	}
	if h.opt.Cluster && !t.allAtOnce && !errors.Is(answered, ErrNodeDown) && !h.othersSettledNow {
		if err := h.othersSettled(ctx, n, t.accept[0]); err != nil {
			return err
		}
	}
	if err := h.fence(ctx); err != nil {
		return err
	}
	h.emitJ(j, Event{Step: step, Node: n.Name(), Message: "restarting: " + n.Method()})
	if err := n.Apply(ctx, want); err != nil {
		return err
	}
	h.rep.Restarts++
	for _, k := range accept {
		if err := h.waitAccepts(ctx, n, k); err != nil {
			return h.downError(ctx, n, err)
		}
	}
	if err := h.refusesStrangers(ctx, n); err != nil {
		return err // before the refuse checks: an open node accepts the old key too, and that is not why
	}
	if err := h.answers(ctx, n, nil, refuse); err != nil {
		return err
	}
	h.emitJ(j, Event{Step: step, Node: n.Name(), Message: "checked: " + h.describe(accept, refuse)})
	return nil
}

// fence proves, immediately before a node is changed or a credential published, that this rotator still holds the
// lease: a check-and-set write of the journal, which fails once another rotator has taken the lease (a rotator frozen
// past the TTL, then resumed, stops here instead of applying stale slots). The write must also have taken less than half the TTL on
// this process's monotonic clock, so the lease it renewed is still fresh whatever the wall clocks of the rotators
// say; a slow write is repeated.
func (h *holder) fence(ctx context.Context) error {
	for {
		sent := time.Now() // elapsed time on the monotonic clock, not the deployment's Clock: a freeze counts
		if err := h.writeJournal(ctx, func(*Journal) {}); err != nil {
			return err
		}
		if time.Since(sent) < h.opt.LeaseTTL/2 {
			h.checkpoint("fenced")
			return nil
		}
		h.opt.Logger.Warn("renewing the lease took over half its TTL; renewing again before changing a node", "deployment", h.opt.Deployment)
	}
}

// answers checks once that n accepts every accept key and refuses every refuse key.
func (r *Rotator) answers(ctx context.Context, n Node, accept, refuse []Key) error {
	r.remember(accept...)
	r.remember(refuse...)
	for _, k := range accept {
		if err := n.Probe(ctx, k); err != nil {
			return fmt.Errorf("key %s: %w", r.fp(k), err)
		}
	}
	for _, k := range refuse {
		err := n.Probe(ctx, k)
		if err == nil {
			return fmt.Errorf("key %s is still accepted", r.fp(k))
		}
		if !errors.Is(err, ErrRejected) {
			return fmt.Errorf("key %s: %w", r.fp(k), err)
		}
	}
	return nil
}

// waitAccepts waits (up to ReadyTimeout) until n accepts key; a rejection or a stopped node ends the wait at once.
func (r *Rotator) waitAccepts(ctx context.Context, n Node, key Key) error {
	r.remember(key)
	return Poll(ctx, r.opt.ReadyTimeout, func() error {
		err := n.Probe(ctx, key)
		if errors.Is(err, ErrRejected) || errors.Is(err, ErrNodeDown) {
			return Permanent(fmt.Errorf("key %s: %w", r.fp(key), err))
		}
		if err != nil {
			return fmt.Errorf("key %s: %w", r.fp(key), err)
		}
		return nil
	})
}

// describe says which keys a check accepted and refused, by fingerprint.
func (r *Rotator) describe(accept, refuse []Key) string {
	s := ""
	for _, k := range accept {
		s += r.fp(k) + " accepted, "
	}
	for _, k := range refuse {
		s += r.fp(k) + " refused, "
	}
	return strings.TrimSuffix(s, ", ")
}
