package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/qdrantrotator/rotator/config"
	"github.com/qdrantrotator/rotator/posture"
)

// consumerPolicies are the Vault policies deploy/vault gives consumers; the audit reads them by these names.
var consumerPolicies = []string{"qdrant-consumer-admin", "qdrant-consumer-key", "qdrant-consumer-read-only"}

// Exit codes of `audit` when a finding is at or above --fail-on: the worst finding's severity.
const (
	exitFindingLow    = 7
	exitFindingMedium = 8
	exitFindingHigh   = 9
)

// findingsError ends an audit whose worst finding at or above --fail-on has this severity.
type findingsError struct {
	worst posture.Severity
	count int
	floor posture.Severity
}

func (e *findingsError) Error() string {
	return fmt.Sprintf("%d finding(s) at or above %s, the worst %s", e.count, e.floor, e.worst)
}

func (e *findingsError) exitCode() int {
	return map[posture.Severity]int{posture.Low: exitFindingLow, posture.Medium: exitFindingMedium, posture.High: exitFindingHigh}[e.worst]
}

// cmdAudit reviews the fleet's security posture: one block per finding (text) or a JSON array.
func cmdAudit(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, logger *slog.Logger) error {
	var failOn string
	c, err := parseFlags("audit", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&failOn, "fail-on", "high", "exit non-zero when a finding is at least this severe: low, medium or high")
	})
	if err != nil {
		return err
	}
	floor, err := posture.ParseSeverity(failOn)
	if err != nil {
		return usageError{fmt.Errorf("--fail-on %w", err)}
	}
	a, err := newApp(ctx, c, env, logger)
	if err != nil {
		return err
	}
	defer a.close()
	findings := a.audit(ctx)
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if findings == nil {
			findings = []posture.Finding{} // an empty array, not null
		}
		if err := enc.Encode(findings); err != nil {
			return err
		}
	} else {
		printFindings(stdout, findings)
	}
	var failing []posture.Finding
	for _, f := range findings {
		if f.Severity >= floor {
			failing = append(failing, f)
		}
	}
	if len(failing) > 0 {
		return &findingsError{worst: posture.Worst(failing), count: len(failing), floor: floor}
	}
	return nil
}

func printFindings(w io.Writer, findings []posture.Finding) {
	count := map[posture.Severity]int{}
	for _, f := range findings {
		count[f.Severity]++
		where := "deployment " + orNone(f.Deployment)
		if f.Deployment == "" {
			where = "fleet"
		}
		if f.Node != "" {
			where += ", node " + f.Node
		}
		fmt.Fprintf(w, "[%s] %s (%s)\n  evidence: %s\n  practice: %s\n  fix:      %s\n\n", f.Severity, f.Check, where, f.Evidence, f.Practice, f.Fix)
	}
	fmt.Fprintf(w, "%d finding(s): %d high, %d medium, %d low\n", len(findings), count[posture.High], count[posture.Medium], count[posture.Low])
}

// audit gathers the facts of every deployment of the config (the selected ones reviewed, the others read for
// their key fingerprints only, to find a key shared across deployments) and reviews them.
func (a *app) audit(ctx context.Context) []posture.Finding {
	scope := posture.Scope{Policies: a.store, PolicyNames: consumerPolicies, Now: time.Now(),
		API: &posture.APIFacts{Listen: a.cfg.Daemon.Listen, TLS: a.cfg.Daemon.TLS != nil}}
	for _, d := range a.cfg.Deployments {
		review := slices.ContainsFunc(a.selected, func(s config.Deployment) bool { return s.Name == d.Name })
		t := posture.Target{Deployment: d.Name, MaxAge: d.MaxAge.Std(), ReadOnlyConsumer: readOnlyConsumer(d), Review: review}
		t.Keys, t.Nodes, t.Err = a.auditSources(ctx, d, review)
		scope.Targets = append(scope.Targets, t)
	}
	return posture.Review(posture.Gather(ctx, scope))
}

// auditSources are where the review reads a deployment's keys (its rotator) and, when it is reviewed, its nodes'
// facts (from Docker and the host's files: no TLS needed).
func (a *app) auditSources(ctx context.Context, d config.Deployment, review bool) (posture.KeySource, []posture.NodeSource, error) {
	r, err := a.rotator(ctx, d, nil)
	if err != nil {
		return nil, nil, err
	}
	if !review {
		return r, nil, nil
	}
	names, err := a.containers(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := a.nodes(d, names, nil)
	if err != nil {
		return nil, nil, err
	}
	sources := make([]posture.NodeSource, 0, len(nodes))
	for _, n := range nodes {
		sources = append(sources, n)
	}
	return r, sources, nil
}

// readOnlyConsumer says the config expects read-only consumers: read_only: rotate, or a consumer class named
// read-only (read_only, readonly).
func readOnlyConsumer(d config.Deployment) bool {
	if d.ReadOnly == "rotate" {
		return true
	}
	for name := range d.Consumers {
		n := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(name))
		if strings.Contains(n, "readonly") {
			return true
		}
	}
	return false
}
