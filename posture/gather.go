package posture

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// NodeSource gives one node's facts (qdrantctl.Node).
type NodeSource interface {
	Name() string
	Facts(ctx context.Context) (NodeFacts, error)
}

// KeySource is what the review asks of a deployment's keys (rotation.Rotator): Vault's records by fingerprint, and
// the nodes' answer to a key never issued (the rotator's own open check).
type KeySource interface {
	Status(ctx context.Context) (rotation.Status, error)
	NamedKeys(ctx context.Context) ([]rotation.NamedKeyState, error)
	Verify(ctx context.Context) (rotation.Verification, error)
}

// PolicyReader reads a Vault ACL policy's text by name (vaultsync.Store).
type PolicyReader interface {
	Policy(ctx context.Context, name string) (string, error)
}

// Target is one deployment to gather facts of.
type Target struct {
	Deployment string
	Nodes      []NodeSource
	Keys       KeySource
	MaxAge     time.Duration
	// ReadOnlyConsumer: the config has read-only consumers.
	ReadOnlyConsumer bool
	// Review: find in this deployment; false gathers only its key fingerprints, to compare with the others.
	Review bool
	// Err says why the deployment's nodes and keys could not be reached at all (Keys and Nodes unset): a low
	// finding, the audit goes on.
	Err error
}

// Scope is what one audit looks at.
type Scope struct {
	Targets  []Target
	Policies PolicyReader
	// PolicyNames are the consumer policies to read (none: no policy check); one that does not exist ("") is skipped.
	PolicyNames []string
	API         *APIFacts
	Now         time.Time
}

// Gather collects the facts of a scope. What cannot be gathered is recorded (Unknown, PolicyFacts.Error) and
// becomes a low finding; it never stops the audit.
func Gather(ctx context.Context, s Scope) Facts {
	f := Facts{Now: s.Now, API: s.API}
	for _, t := range s.Targets {
		f.Deployments = append(f.Deployments, gatherDeployment(ctx, t))
	}
	for _, name := range s.PolicyNames {
		p := PolicyFacts{Name: name}
		text, err := s.Policies.Policy(ctx, name)
		switch {
		case err != nil:
			p.Error = err.Error()
		case text == "":
			continue // no such policy: nothing granted
		default:
			p.Paths = PolicyPaths(text)
		}
		f.Policies = append(f.Policies, p)
	}
	return f
}

func gatherDeployment(ctx context.Context, t Target) DeploymentFacts {
	d := DeploymentFacts{Name: t.Deployment, MaxAge: t.MaxAge, ReadOnlyConsumer: t.ReadOnlyConsumer, Reviewed: t.Review}
	if t.Err != nil || t.Keys == nil {
		d.Unknown = append(d.Unknown, fmt.Sprintf("the deployment: %v", cmp.Or(t.Err, errors.New("no key source"))))
		return d
	}
	st, err := t.Keys.Status(ctx)
	if err != nil {
		d.Unknown = append(d.Unknown, fmt.Sprintf("keys in Vault: %v", err))
	}
	d.Admin = KeyFacts{Fingerprint: st.Fingerprint, Since: st.Since}
	d.ReadOnly = KeyFacts{Fingerprint: st.ReadOnly, Since: st.ReadOnlySince}
	named, err := t.Keys.NamedKeys(ctx)
	if err != nil {
		d.Unknown = append(d.Unknown, fmt.Sprintf("named keys in Vault: %v", err))
	}
	for _, k := range named {
		if !k.Missing {
			d.Named = append(d.Named, NamedKeyFacts{Name: k.Name, JWT: k.Kind == rotation.CredentialJWT, Fingerprint: k.Fingerprint, Expires: k.Expires})
		}
	}
	if !t.Review {
		return d
	}
	for _, n := range t.Nodes {
		nf, err := n.Facts(ctx)
		if err != nil {
			d.Unknown = append(d.Unknown, fmt.Sprintf("node %s: %v", n.Name(), err))
			continue
		}
		d.Nodes = append(d.Nodes, nf)
	}
	// The open check is the rotator's own: every node must refuse a fresh random key with 401. Verify also fails
	// on drift, which is not the audit's business (verify reports it); only the never-issued answers count here.
	v, err := t.Keys.Verify(ctx)
	checked := false
	for _, c := range v.Nodes {
		if c.Slot != rotation.SlotNone {
			continue
		}
		checked = true
		if c.Accepted {
			d.Open = append(d.Open, c.Node)
		}
	}
	if !checked && err != nil && !errors.Is(err, rotation.ErrNoKey) {
		d.Unknown = append(d.Unknown, fmt.Sprintf("the open check: %v", err))
	}
	slices.Sort(d.Open)
	return d
}

// policyPath matches the path of each rule of an HCL ACL policy: path "..." {.
var policyPath = regexp.MustCompile(`(?m)^\s*path\s+"([^"]*)"\s*\{`)

// PolicyPaths lists the paths an HCL ACL policy grants (its comments ignored).
func PolicyPaths(text string) []string {
	var out []string
	for _, m := range policyPath.FindAllStringSubmatch(stripComments(text), -1) {
		out = append(out, m[1])
	}
	return out
}

var hclComment = regexp.MustCompile(`(?m)^\s*(#|//).*$`)

func stripComments(text string) string { return hclComment.ReplaceAllString(text, "") }
