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
	"sync"
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
	fp       rotation.Fingerprinter

	mu sync.Mutex
	// engines are the Docker Engines opened so far, one per distinct address, shared by the nodes on it.
	engines map[qdrantctl.EngineAddress]*qdrantctl.Engine
	byLabel map[string][]string // deployment -> containers found by its label (containers)
	// foundOn is, for a deployment selected by label, the engine each of its containers was found on.
	foundOn map[string]map[string]qdrantctl.EngineAddress
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
	// The engines of the selected deployments are opened now: one that does not answer fails the command at once.
	for _, d := range selected {
		for _, addr := range engineAddresses(d) {
			if _, err := a.engine(ctx, addr); err != nil {
				a.close()
				return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
			}
		}
	}
	return a, nil
}

// close closes every engine the command opened.
func (a *app) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.engines {
		e.Close()
	}
	a.engines = nil
}

// engineAddress is where a config's engine is; an unset host is the DOCKER_* environment.
func engineAddress(e config.DockerEngine) qdrantctl.EngineAddress {
	if e.Host == "" {
		return qdrantctl.EngineAddress{}
	}
	addr := qdrantctl.EngineAddress{Host: e.Host, TLSVerify: e.TLSVerify}
	if e.TLSVerify {
		addr.CertPath = e.CertDir()
	}
	return addr
}

// defaultEngine is the engine of a deployment's containers that docker_hosts does not name.
func defaultEngine(d config.Deployment) qdrantctl.EngineAddress {
	if d.Docker == nil {
		return qdrantctl.EngineAddress{}
	}
	return engineAddress(*d.Docker)
}

// engineAddresses are the distinct engines a deployment names: its default engine first, then those of
// docker_hosts in the order of their addresses.
func engineAddresses(d config.Deployment) []qdrantctl.EngineAddress {
	out := []qdrantctl.EngineAddress{defaultEngine(d)}
	var rest []qdrantctl.EngineAddress
	for _, e := range d.DockerHosts {
		if addr := engineAddress(e); !slices.Contains(out, addr) && !slices.Contains(rest, addr) {
			rest = append(rest, addr)
		}
	}
	slices.SortFunc(rest, func(x, y qdrantctl.EngineAddress) int { return strings.Compare(x.String(), y.String()) })
	return append(out, rest...)
}

// engine returns the open engine at addr, opening it on first use.
func (a *app) engine(ctx context.Context, addr qdrantctl.EngineAddress) (*qdrantctl.Engine, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.engines[addr]; ok {
		return e, nil
	}
	e, err := qdrantctl.DialEngine(ctx, addr)
	if err != nil {
		return nil, err
	}
	if a.engines == nil {
		a.engines = map[qdrantctl.EngineAddress]*qdrantctl.Engine{}
	}
	a.engines[addr] = e
	return e, nil
}

// engineOf is the engine of one of a deployment's containers: the one it was found on (label), else its
// docker_hosts entry, else the deployment's engine.
func (a *app) engineOf(d config.Deployment, name string) qdrantctl.EngineAddress {
	a.mu.Lock()
	addr, found := a.foundOn[d.Name][name]
	a.mu.Unlock()
	if found {
		return addr
	}
	if e, ok := d.DockerHosts[name]; ok {
		return engineAddress(e)
	}
	return defaultEngine(d)
}

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
// every deployment's rotator checks its containers against every other deployment's). A label is looked up on every
// engine the deployment names (docker and each of docker_hosts). A name of docker_hosts is taken from its own engine
// only (a namesake elsewhere is another container) and must be found there; another name found on two engines is
// refused.
func (a *app) containers(ctx context.Context, d config.Deployment) ([]string, error) {
	if d.Label == "" {
		return d.Containers, nil
	}
	a.mu.Lock()
	names, ok := a.byLabel[d.Name]
	a.mu.Unlock()
	if ok {
		return names, nil
	}
	on := map[string]qdrantctl.EngineAddress{}
	for _, addr := range engineAddresses(d) {
		eng, err := a.engine(ctx, addr)
		if err != nil {
			return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
		}
		found, err := eng.ContainersByLabel(ctx, d.Label)
		if err != nil {
			return nil, fmt.Errorf("deployment %s: docker engine %s: %w", d.Name, addr, err)
		}
		for _, name := range found {
			if e, ok := d.DockerHosts[name]; ok && engineAddress(e) != addr {
				continue // docker_hosts puts it elsewhere: this one is another container of the same name
			}
			if other, dup := on[name]; dup {
				return nil, usageError{fmt.Errorf("deployment %s: container %s has label %s on docker engines %s and %s; give each node a name of its own", d.Name, name, d.Label, other, addr)}
			}
			on[name] = addr
		}
	}
	for name, e := range d.DockerHosts {
		if _, ok := on[name]; !ok {
			return nil, usageError{fmt.Errorf("deployment %s: docker_hosts.%s: no container %s with label %s on docker engine %s", d.Name, name, name, d.Label, engineAddress(e))}
		}
	}
	names = slices.Sorted(maps.Keys(on))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byLabel == nil {
		a.byLabel, a.foundOn = map[string][]string{}, map[string]map[string]qdrantctl.EngineAddress{}
	}
	a.byLabel[d.Name], a.foundOn[d.Name] = names, on
	return names, nil
}

// rotator builds the domain rotator of one deployment.
func (a *app) rotator(ctx context.Context, d config.Deployment, observe func(rotation.Event)) (*rotation.Rotator, error) {
	var tlsCfg *tls.Config
	if d.TLS != nil {
		c, err := qdrantctl.TLSConfig(d.TLS.CAFile, d.TLS.CertFile, d.TLS.KeyFile, d.TLS.ServerName)
		if err != nil {
			return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
		}
		tlsCfg = c
	}
	var nodes []rotation.Node
	var err error
	if d.Mode == "kubernetes" {
		pods, perr := a.podNodes(ctx, d, tlsCfg)
		for _, p := range pods {
			nodes = append(nodes, p)
		}
		err = perr
	} else {
		nodes, err = a.containerNodes(ctx, d, tlsCfg)
	}
	if err != nil {
		return nil, err
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

// podNodes are the pods of a deployment's StatefulSet, by ordinal.
func (a *app) podNodes(ctx context.Context, d config.Deployment, tlsCfg *tls.Config) ([]*qdrantctl.PodNode, error) {
	k := d.Kubernetes
	kube, err := qdrantctl.DialKube(qdrantctl.KubeOptions{Kubeconfig: k.Kubeconfig, Context: k.Context, Namespace: k.Namespace})
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
	}
	sts := k.StatefulSet
	if sts == "" {
		if sts, err = kube.StatefulSetOf(ctx, k.Selector); err != nil {
			return nil, fmt.Errorf("deployment %s: kubernetes.selector: %w", d.Name, err)
		}
	}
	pods, err := kube.StatefulSetPods(ctx, sts)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("deployment %s: statefulset %s/%s has 0 replicas", d.Name, k.Namespace, sts)
	}
	nodes := make([]*qdrantctl.PodNode, 0, len(pods))
	for _, pod := range pods {
		n, err := qdrantctl.NewPodNode(kube, qdrantctl.PodOptions{
			Pod: pod, StatefulSet: sts, Container: k.Container, Secret: k.Secret, Layout: k.Layout,
			ConfigKey: k.ConfigKey, ConfigPath: k.ConfigPath, Port: k.Port, HTTPS: d.TLS != nil, TLS: tlsCfg,
			ReplaceTimeout: d.StopTimeout.Std() + d.ReadyTimeout.Std(), RequestTag: a.requestTag(),
		})
		if err != nil {
			return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// containerNodes are the nodes of a deployment's containers, each on its engine.
func (a *app) containerNodes(ctx context.Context, d config.Deployment, tlsCfg *tls.Config) ([]rotation.Node, error) {
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
			if slices.Contains(theirs, name) && a.engineOf(d, name) == a.engineOf(other, name) {
				return nil, usageError{fmt.Errorf("container %s belongs to deployments %s and %s: rotating one would lock the other's clients out; give each container to one deployment", name, d.Name, other.Name)}
			}
		}
	}
	qnodes, err := a.nodesCtx(ctx, d, names, tlsCfg)
	if err != nil {
		return nil, err
	}
	nodes := make([]rotation.Node, 0, len(qnodes))
	for _, n := range qnodes {
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// requestTag marks the rotator's own requests to nodes: the same in every rotator process sharing the fingerprint
// secret (daemons, `rotator audit`), so none counts another's probes as a client's denied requests.
func (a *app) requestTag() string { return "qdrant-rotator-" + a.fp.Tag("own-request") }

// nodes are the Qdrant nodes of a deployment's containers, each on its engine.
func (a *app) nodes(d config.Deployment, names []string, tlsCfg *tls.Config) ([]*qdrantctl.Node, error) {
	return a.nodesCtx(context.Background(), d, names, tlsCfg)
}

// nodesCtx is nodes with the context an engine not yet open is opened with.
func (a *app) nodesCtx(ctx context.Context, d config.Deployment, names []string, tlsCfg *tls.Config) ([]*qdrantctl.Node, error) {
	nodes := make([]*qdrantctl.Node, 0, len(names))
	for _, name := range names {
		eng, err := a.engine(ctx, a.engineOf(d, name))
		if err != nil {
			return nil, fmt.Errorf("deployment %s: node %s: %w", d.Name, name, err)
		}
		n, err := qdrantctl.NewNode(eng, qdrantctl.NodeOptions{
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
