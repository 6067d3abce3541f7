package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/qdrantrotator/rotator/config"
	"github.com/qdrantrotator/rotator/rotation"
)

var errNoConfig = errors.New("--config is required")

// common are the flags every command against a config takes.
type common struct {
	config     string
	deployment string
	output     string
}

func parseFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (common, error) {
	var c common
	fs := flag.NewFlagSet("rotator "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "", "config file (required)")
	fs.StringVar(&c.deployment, "deployment", "", "only this deployment (default: every deployment in the config)")
	fs.StringVar(&c.output, "output", "text", "output format: text or json")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return c, usageError{err}
	}
	switch {
	case fs.NArg() > 0:
		return c, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case c.config == "":
		return c, usageError{errNoConfig}
	case c.output != "text" && c.output != "json":
		return c, usageError{fmt.Errorf("--output %q: want text or json", c.output)}
	}
	return c, nil
}

func cmdRotate(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, logger *slog.Logger) error {
	var req rotation.Request
	var dryRun bool
	var server, tokenFile string
	c, err := parseFlags("rotate", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&req.Emergency, "emergency", false, "leaked key: no overlap, the old key is refused as fast as the nodes restart")
		fs.BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
		fs.BoolVar(&req.Adopt, "adopt", false, "when Vault has no key yet, import the one the nodes use")
		fs.StringVar(&server, "server", "", "ask the daemon at this URL instead of rotating here")
		fs.StringVar(&tokenFile, "token-file", "", "with --server: a file holding an admin API token (else ROTATOR_TOKEN)")
	})
	if server != "" && (err == nil || errors.Is(err, errNoConfig)) {
		return remoteRotate(ctx, server, tokenFile, c.deployment, req, dryRun, env, stdout)
	}
	if err != nil {
		return err
	}
	a, err := newApp(ctx, c, env, logger)
	if err != nil {
		return err
	}
	defer a.close()
	type result struct {
		Plan   *rotation.Plan   `json:"plan,omitempty"`
		Report *rotation.Report `json:"report,omitempty"`
		Events []rotation.Event `json:"events,omitempty"`
		Error  string           `json:"error,omitempty"`
	}
	var results []result
	var errs []error
	var mu sync.Mutex // emergency rotations report from one goroutine per node
	// Keep the Vault session alive (renewal, or a new AppRole login) through long grace periods.
	sessionCtx, endSession := context.WithCancel(ctx)
	defer endSession()
	go a.store.KeepLoggedIn(sessionCtx, logger)
	for _, d := range a.selected {
		var res result
		observe := func(e rotation.Event) {
			mu.Lock()
			defer mu.Unlock()
			res.Events = append(res.Events, e)
			if c.output == "text" {
				fmt.Fprintf(stdout, "%s  %-11s %-12s %-9s %-14s %s\n", e.Time.UTC().Format("15:04:05.000"), e.Deployment, e.Phase, e.Step, e.Node, withFP(e.Message, e.Fingerprint))
			}
		}
		r, err := a.rotator(ctx, d, observe)
		if err == nil && dryRun {
			var p rotation.Plan
			p, err = r.Plan(ctx, req)
			res.Plan = &p
			if err == nil && c.output == "text" {
				printPlan(stdout, p)
			}
		} else if err == nil {
			var rep rotation.Report
			rep, err = r.Rotate(ctx, req)
			res.Report = &rep
			if c.output == "text" && rep.RotationID != "" {
				printReport(stdout, rep)
			}
		}
		if err != nil {
			res.Error = err.Error()
			errs = append(errs, inDeployment(d.Name, err))
		}
		results = append(results, res)
	}
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"results": results}); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// inDeployment names the deployment in err unless err names it already.
func inDeployment(name string, err error) error {
	if strings.HasPrefix(err.Error(), "deployment "+name+":") || strings.HasPrefix(err.Error(), "deployment "+name+" ") {
		return err
	}
	return fmt.Errorf("deployment %s: %w", name, err)
}

func withFP(msg, fp string) string {
	if fp == "" {
		return msg
	}
	return msg + " [" + fp + "]"
}

func printPlan(w io.Writer, p rotation.Plan) {
	fmt.Fprintf(w, "plan for deployment %s (%s rotation; current key %s; grace %s)\n", p.Deployment, p.Kind, p.Current, p.Grace)
	for i, s := range p.Steps {
		fmt.Fprintf(w, "  %2d. %-9s %-14s %s\n", i+1, s.Phase, s.Node, s.Method)
		fmt.Fprintf(w, "      api_key %s -> %s, alt_api_key %s -> %s, read_only_api_key %s -> %s, jwt_rbac %v -> %v; then %s\n",
			orUnset(s.Before.APIKey), orUnset(s.After.APIKey), orUnset(s.Before.AltAPIKey), orUnset(s.After.AltAPIKey),
			orUnset(s.Before.ReadOnlyKey), orUnset(s.After.ReadOnlyKey), s.Before.JWTRBAC, s.After.JWTRBAC, s.Checks)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "  - %s\n", n)
	}
	fmt.Fprintln(w, "dry run: nothing was changed")
}

func orUnset(fp string) string {
	if fp == "" {
		return "(unset)"
	}
	return fp
}

func printReport(w io.Writer, r rotation.Report) {
	fmt.Fprintf(w, "deployment %s: rotation %s %s (%s%s), %s -> %s, %d restarts of %d nodes in %s\n",
		r.Deployment, r.RotationID, r.Outcome, r.Kind, map[bool]string{true: ", resumed", false: ""}[r.Resumed],
		r.OldFingerprint, r.NewFingerprint, r.Restarts, len(r.Nodes), r.Finished.Sub(r.Started).Round(time.Millisecond))
	if r.Escalated {
		fmt.Fprintln(w, "  emergency: the interrupted scheduled rotation was turned into an emergency cut (no overlap)")
	}
	if len(r.StartedNodes) > 0 {
		fmt.Fprintf(w, "  found stopped and started by the rotator: %s\n", strings.Join(r.StartedNodes, ", "))
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
}

func cmdStatus(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, logger *slog.Logger) error {
	return eachDeployment(ctx, "status", args, env, stdout, stderr, logger, func(ctx context.Context, r *rotation.Rotator) (any, string, error) {
		s, err := r.Status(ctx)
		text := fmt.Sprintf("deployment %s: key %s (version %d, rotation %s), age %s; journal: %s %s",
			s.Deployment, orUnset(s.Fingerprint), s.Version, s.RotationID, time.Duration(s.AgeSeconds)*time.Second, orNone(string(s.LastPhase)), s.LastID)
		if s.ReadOnly != "" {
			text += fmt.Sprintf("; read-only credential %s (%s)", s.ReadOnly, s.ReadOnlyAs)
		}
		if s.LastError != "" {
			text += "; last error: " + s.LastError
		}
		if s.LockedBy != "" {
			text += fmt.Sprintf("; locked by %s until %s", s.LockedBy, s.LockedUntil.UTC().Format(time.RFC3339))
		}
		if err != nil {
			return s, text, err
		}
		keys, err := r.NamedKeys(ctx)
		for _, k := range keys {
			switch {
			case k.Missing:
				text += fmt.Sprintf("\n  named key %-16s not published yet", k.Name)
			case k.Expires.IsZero():
				text += fmt.Sprintf("\n  named key %-16s %s (%s)", k.Name, k.Fingerprint, k.Kind)
			default:
				text += fmt.Sprintf("\n  named key %-16s %s (%s), expires %s", k.Name, k.Fingerprint, k.Kind, k.Expires.UTC().Format(time.RFC3339))
			}
		}
		return struct {
			rotation.Status
			NamedKeys []rotation.NamedKeyState `json:"named_keys,omitempty"`
		}{s, keys}, text, err
	})
}

func cmdVerify(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, logger *slog.Logger) error {
	return eachDeployment(ctx, "verify", args, env, stdout, stderr, logger, func(ctx context.Context, r *rotation.Rotator) (any, string, error) {
		v, err := r.Verify(ctx)
		var b strings.Builder
		fmt.Fprintf(&b, "deployment %s: Vault's current key %s (version %d)", v.Deployment, orUnset(v.Fingerprint), v.Version)
		if v.ReadOnly != "" {
			fmt.Fprintf(&b, ", read-only credential %s", v.ReadOnly)
		}
		for _, n := range v.Nodes {
			if n.Slot == rotation.SlotNone {
				if n.Accepted {
					fmt.Fprintf(&b, "\n  %-14s is OPEN: %s", n.Node, n.Error)
				} else if n.Error != "" {
					fmt.Fprintf(&b, "\n  %-14s could not be checked with a key never issued: %s", n.Node, n.Error)
				} else {
					fmt.Fprintf(&b, "\n  %-14s refuses a key never issued (401)", n.Node)
				}
				continue
			}
			if n.Accepted {
				fmt.Fprintf(&b, "\n  %-14s accepts the %s credential", n.Node, n.Slot)
			} else {
				fmt.Fprintf(&b, "\n  %-14s does NOT accept the %s credential: %s", n.Node, n.Slot, n.Error)
			}
		}
		return v, b.String(), err
	})
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// eachDeployment runs a read-only command on the selected deployments and prints each result.
func eachDeployment(ctx context.Context, name string, args []string, env func(string) string, stdout, stderr io.Writer, logger *slog.Logger,
	do func(context.Context, *rotation.Rotator) (any, string, error)) error {
	c, err := parseFlags(name, args, stderr, nil)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, c, env, logger)
	if err != nil {
		return err
	}
	defer a.close()
	var out []any
	var errs []error
	for _, d := range a.selected {
		r, err := a.rotator(ctx, d, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v, text, err := do(ctx, r)
		if err != nil {
			errs = append(errs, inDeployment(d.Name, err))
		}
		out = append(out, v)
		if c.output == "text" {
			fmt.Fprintln(stdout, text)
		}
	}
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"results": out}); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// cmdCheck validates a config file strictly and prints what it describes; it contacts neither Vault nor Docker.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags("check", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, err := config.Load(c.config)
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintf(stdout, "config %s is valid: %d deployment(s)\n", c.config, len(cfg.Deployments))
	for _, d := range cfg.Deployments {
		nodes := strings.Join(d.Containers, ", ")
		if d.Label != "" {
			nodes = "label " + d.Label
		}
		fmt.Fprintf(stdout, "  %s: mode %s, nodes %s, grace %s, read_only %s, %d named keys\n", d.Name, d.Mode, nodes, d.Grace.Std(), d.ReadOnly, len(d.Keys))
	}
	return nil
}
