package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/qdrantrotator/rotator/config"
	"github.com/qdrantrotator/rotator/qdrantctl"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/vaultsync"
)

// crashHookEnv names a test-only hook: when set to a checkpoint name (e.g. "published", "stage:qdrant-0:begin"),
// the process kills itself with SIGKILL right after the journal records that point, to prove crash safety.
const crashHookEnv = "ROTATOR_TEST_CRASH_AT"

// freezeHookEnv names a test-only hook: at that checkpoint the process stops itself with SIGSTOP (a rotator frozen
// mid-rotation) and goes on where it was once it gets SIGCONT.
const freezeHookEnv = "ROTATOR_TEST_FREEZE_AT"

// app is one run of a command against a config file.
type app struct {
	cfg *config.Config
	// selected are the deployments the command acts on.
	selected []config.Deployment
	logger   *slog.Logger
	env      func(string) string
	store    *vaultsync.Store
	engine   *qdrantctl.Engine
	fp       rotation.Fingerprinter
	byLabel  map[string][]string // deployment -> containers found by its label (containers)
}

// newApp loads the config and connects to Vault and Docker. The fingerprint secret is created in Vault by the first
// command of all (a status, a dry run or a verify included: the one write they may make), so a key has the same
// fingerprint from the very first command on.
func newApp(ctx context.Context, c common, env func(string) string, logger *slog.Logger) (*app, error) {
	cfg, err := config.Load(c.config)
	if err != nil {
		return nil, usageError{err}
	}
	selected := cfg.Deployments
	if c.deployment != "" {
		d, err := cfg.Find(c.deployment)
		if err != nil {
			return nil, usageError{err}
		}
		selected = []config.Deployment{*d}
	}
	opts := vaultsync.Options{Address: cfg.Vault.Address, Mount: cfg.Vault.Mount, Prefix: cfg.Vault.Prefix, Retention: cfg.Vault.Retention.Std()}
	opts.TokenFile = cfg.Vault.TokenFile // read at Login, and again when the token can no longer be renewed
	if a := cfg.Vault.AppRole; a != nil {
		roleID := a.RoleID
		if a.RoleIDFile != "" {
			b, err := os.ReadFile(a.RoleIDFile)
			if err != nil {
				return nil, fmt.Errorf("vault.approle.role_id_file: %w", err)
			}
			roleID = strings.TrimSpace(string(b))
		}
		opts.AppRole = &vaultsync.AppRole{Mount: a.Mount, RoleID: roleID, SecretIDFile: a.SecretIDFile}
	}
	if k := cfg.Vault.Kubernetes; k != nil {
		opts.Kubernetes = &vaultsync.Kubernetes{Role: k.Role, Mount: k.Mount, JWTFile: k.JWTFile}
	}
	store, err := vaultsync.New(opts)
	if err != nil {
		return nil, err
	}
	if err := store.Login(ctx); err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, selected: selected, logger: logger, env: env, store: store}
	if a.fp, err = a.fingerprinter(ctx); err != nil {
		return nil, err
	}
	if a.engine, err = qdrantctl.NewEngine(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *app) close() { a.engine.Close() }

// fingerprinter returns the fingerprinter keyed by the secret kept in Vault; create=false (dry runs, status,
// verify) never writes, falling back to a one-off secret when none exists yet.
func (a *app) fingerprinter(ctx context.Context) (rotation.Fingerprinter, error) {
	secret, err := a.store.FingerprintSecret(ctx, true)
	if err != nil {
		return rotation.Fingerprinter{}, fmt.Errorf("the fingerprint secret (created in Vault by the first command that needs it): %w", err)
	}
	return rotation.NewFingerprinter(secret)
}

// containers are a deployment's container names: listed, or found by label (asked of Docker once per command, as
// every deployment's rotator checks its containers against every other deployment's).
func (a *app) containers(ctx context.Context, d config.Deployment) ([]string, error) {
	if d.Label == "" {
		return d.Containers, nil
	}
	if names, ok := a.byLabel[d.Name]; ok {
		return names, nil
	}
	names, err := a.engine.ContainersByLabel(ctx, d.Label)
	if err != nil {
		return nil, err
	}
	if a.byLabel == nil {
		a.byLabel = map[string][]string{}
	}
	a.byLabel[d.Name] = names
	return names, nil
}

// rotator builds the domain rotator of one deployment.
func (a *app) rotator(ctx context.Context, d config.Deployment, observe func(rotation.Event)) (*rotation.Rotator, error) {
	names, err := a.containers(ctx, d)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("deployment %s: no container has label %s", d.Name, d.Label)
	}
	// A container in two deployments: rotating one would lock the other's clients out. The config refuses listed
	// names; labels are resolved here, against every deployment of the file.
	for _, other := range a.cfg.Deployments {
		if other.Name == d.Name || (other.Label == "" && d.Label == "") {
			continue
		}
		theirs, err := a.containers(ctx, other)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if slices.Contains(theirs, name) {
				return nil, usageError{fmt.Errorf("container %s belongs to deployments %s and %s: rotating one would lock the other's clients out; give each container to one deployment", name, d.Name, other.Name)}
			}
		}
	}
	var tlsCfg *tls.Config
	if d.TLS != nil {
		c, err := qdrantctl.TLSConfig(d.TLS.CAFile, d.TLS.CertFile, d.TLS.KeyFile, d.TLS.ServerName)
		if err != nil {
			return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
		}
		tlsCfg = c
	}
	qnodes, err := a.nodes(d, names, tlsCfg)
	if err != nil {
		return nil, err
	}
	nodes := make([]rotation.Node, 0, len(qnodes))
	for _, n := range qnodes {
		nodes = append(nodes, n)
	}
	var keys []rotation.NamedKey
	for _, name := range slices.Sorted(maps.Keys(d.Keys)) {
		k := d.Keys[name]
		ttl := d.KeyTTL.Std()
		if k.TTL > 0 {
			ttl = k.TTL.Std()
		}
		keys = append(keys, rotation.NamedKey{
			Name: name, Full: k.Read && k.Write && len(k.Collections) == 0, Write: k.Write, Collections: k.Collections, TTL: ttl,
		})
	}
	host, _ := os.Hostname()
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	return rotation.New(a.store, nodes, rotation.Options{
		Deployment: d.Name, ReadOnly: d.ReadOnly == "rotate", Keys: keys, Grace: d.Grace.Std(),
		Cluster: d.Cluster != nil, InternalAuth: d.Cluster != nil && d.Cluster.InternalAuth, AcceptDowntime: d.Cluster != nil && d.Cluster.AcceptDowntime, ReadyTimeout: d.ReadyTimeout.Std(), LeaseTTL: a.cfg.Vault.LeaseTTL.Std(),
		Owner: fmt.Sprintf("%s/%d/%x", host, os.Getpid(), id), Fingerprints: a.fp, Logger: a.logger, Observe: observe,
		Checkpoint: a.crashHook(),
	})
}

// requestTag marks the rotator's own requests to nodes: the same in every rotator process sharing the fingerprint
// secret (daemons, `rotator audit`), so none counts another's probes as a client's denied requests.
func (a *app) requestTag() string { return "qdrant-rotator-" + a.fp.Tag("own-request") }

// nodes are the Qdrant nodes of a deployment's containers.
func (a *app) nodes(d config.Deployment, names []string, tlsCfg *tls.Config) ([]*qdrantctl.Node, error) {
	nodes := make([]*qdrantctl.Node, 0, len(names))
	for _, name := range names {
		n, err := qdrantctl.NewNode(a.engine, qdrantctl.NodeOptions{
			Container: name, Mode: qdrantctl.Mode(d.Mode), ConfigPath: d.ConfigPath, URL: d.URLs[name],
			HTTPS: d.TLS != nil, TLS: tlsCfg, StopTimeout: d.StopTimeout.Std(), RequestTag: a.requestTag(),
		})
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func (a *app) crashHook() func(string) {
	crashAt, freezeAt := a.env(crashHookEnv), a.env(freezeHookEnv)
	if crashAt == "" && freezeAt == "" {
		return nil
	}
	return func(point string) {
		switch point {
		case crashAt:
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never go on past the point
		case freezeAt:
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		}
	}
}

// usageError marks errors of the command line or the config file (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
