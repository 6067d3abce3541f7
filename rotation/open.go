package rotation

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// OpenError reports a node that accepted a key never issued: it serves every request, whatever key it is sent.
type OpenError struct {
	Node      string
	Diagnosis Diagnosis
}

func (e *OpenError) Error() string {
	d := e.Diagnosis
	if len(d.Causes) == 0 {
		d.Causes = []string{"the node did not load its keys (an unreadable or missing config file, or no key variable)"}
	}
	return fmt.Sprintf("node %s is open: it accepted a key that was never issued, so it runs with no API key and serves every request", e.Node) + explain(d)
}

// Is makes errors.Is hold for ErrOpen and ErrDrift: an open node does not run with the keys the store calls current.
func (e *OpenError) Is(target error) bool { return target == ErrOpen || target == ErrDrift }

// explain is what a diagnosis adds to an error message: the likely causes and the node's last log lines ("" when
// it has neither).
func explain(d Diagnosis) string {
	s := ""
	if len(d.Causes) > 0 {
		s += "; likely cause: " + strings.Join(d.Causes, "; ")
	}
	if len(d.LogTail) > 0 {
		s += "; its log ends: " + strings.Join(d.LogTail, " | ")
	}
	return s
}

// refusesStrangers proves that n is not open: a fresh random key, never issued, must get 401.
func (r *Rotator) refusesStrangers(ctx context.Context, n Node) error {
	stranger, err := NewKey()
	if err != nil {
		return err
	}
	err = n.Probe(ctx, stranger)
	switch {
	case err == nil:
		return &OpenError{Node: n.Name(), Diagnosis: r.diagnose(ctx, n)}
	case errors.Is(err, ErrUnauthorized):
		return nil
	case errors.Is(err, ErrRejected):
		return fmt.Errorf("node %s answered a key never issued with %v; Qdrant answers 401", n.Name(), err)
	default:
		return fmt.Errorf("node %s: checking that it refuses a key never issued: %w", n.Name(), err)
	}
}

// diagnose asks the node what may explain its state, with every key this rotator knows masked by its fingerprint.
func (r *Rotator) diagnose(ctx context.Context, n Node) Diagnosis {
	d := n.Diagnose(ctx)
	mask := func(lines []string) []string {
		out := make([]string, len(lines))
		for i, l := range lines {
			out[i] = r.mask(l)
		}
		return out
	}
	return Diagnosis{Causes: mask(d.Causes), LogTail: mask(d.LogTail)}
}

// mask replaces every key the rotator knows (the store's and the journal's) in s by its fingerprint.
func (r *Rotator) mask(s string) string {
	r.knownMu.Lock()
	known := r.known
	r.knownMu.Unlock()
	for _, k := range known {
		if !k.IsZero() && len(k.Reveal()) >= 8 {
			s = strings.ReplaceAll(s, k.Reveal(), r.fp(k))
		}
	}
	return s
}

// remember adds keys to those mask hides.
func (r *Rotator) remember(ks ...Key) {
	r.knownMu.Lock()
	defer r.knownMu.Unlock()
	for _, k := range ks {
		if k.IsZero() {
			continue
		}
		seen := false
		for _, o := range r.known {
			seen = seen || o.Equal(k)
		}
		if !seen {
			r.known = append(r.known, k)
		}
	}
}

// downError adds the node's own explanation to an error that says it stopped.
func (r *Rotator) downError(ctx context.Context, n Node, err error) error {
	if !errors.Is(err, ErrNodeDown) {
		return err
	}
	return fmt.Errorf("%w%s", err, explain(r.diagnose(ctx, n)))
}

// OpenNodes probes every node with a key never issued and says, by node, whether it accepted it (is open). A node
// that cannot be reached is not counted either way.
func (r *Rotator) OpenNodes(ctx context.Context) map[string]bool {
	out := map[string]bool{}
	for _, n := range r.nodes {
		err := r.refusesStrangers(ctx, n)
		switch {
		case err == nil:
			out[n.Name()] = false
		case errors.Is(err, ErrOpen):
			out[n.Name()] = true
		}
	}
	return out
}
