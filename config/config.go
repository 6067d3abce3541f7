// Package config reads the rotator's YAML configuration: defaults, a strict parse (unknown fields are errors), then
// validation with messages that name the field. Secrets are never inline: the Vault token comes from VAULT_TOKEN or
// a file, the AppRole secret id from a file. Only cmd/rotator imports this package.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qdrantrotator/rotator/rotation"
)

// Config is the whole file.
type Config struct {
	Vault       Vault        `yaml:"vault"`
	Daemon      Daemon       `yaml:"daemon"`
	Deployments []Deployment `yaml:"deployments"`
}

// Daemon configures `rotator daemon`.
type Daemon struct {
	// Listen is the API's address (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	TLS    *struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	// PollInterval is how often each deployment's state is read from Vault (default 30s).
	PollInterval Duration `yaml:"poll_interval"`
	// AuditInterval is how often the daemon runs the security review (`rotator audit`; default 1h).
	AuditInterval Duration `yaml:"audit_interval"`
	// Tokens are the API's bearer tokens; several may be valid at once, so a token can itself be rotated.
	Tokens []APIToken `yaml:"tokens"`
	// Webhooks receive every audit event, signed.
	Webhooks []Webhook `yaml:"webhooks"`
	// DeniedAlert sends an audit event when one client address is refused more than Threshold times within Window
	// at a node, as the node's audit log shows (default 20 in 5m).
	DeniedAlert DeniedAlert `yaml:"denied_alert"`
	// MaxParallel bounds the rotations running at once across deployments (one per deployment always); the others
	// wait, queued, emergencies first (0 or unset: rotation.DefaultMaxParallel, 4).
	MaxParallel Parallel `yaml:"max_parallel"`
}

// DeniedAlert is the threshold of the denied_requests_burst event.
type DeniedAlert struct {
	Threshold int      `yaml:"threshold"`
	Window    Duration `yaml:"window"`
}

// APIToken is one bearer token, by reference: exactly one of File (re-read as it changes), Env, Vault (a path
// under the Vault prefix whose field "token" holds it).
type APIToken struct {
	Name  string `yaml:"name"`
	Role  string `yaml:"role"` // admin (may start rotations) or read (GET endpoints only)
	File  string `yaml:"file"`
	Env   string `yaml:"env"`
	Vault string `yaml:"vault"`
}

// Webhook is an HTTP endpoint audit events are POSTed to, with an HMAC-SHA256 signature of the body keyed by the
// secret in SecretFile.
type Webhook struct {
	URL        string `yaml:"url"`
	SecretFile string `yaml:"secret_file"`
}

// Vault says where keys live and how the rotator logs in. Unset fields fall back to the standard VAULT_*
// environment (VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, ...).
type Vault struct {
	Address string `yaml:"address"`
	// Mount is the KV v2 mount (default "secret").
	Mount string `yaml:"mount"`
	// Prefix is the folder under the mount for everything of the rotator (default "qdrant").
	Prefix string `yaml:"prefix"`
	// TokenFile holds a Vault token (else VAULT_TOKEN).
	TokenFile string `yaml:"token_file"`
	// AppRole logs in with AppRole instead of a token.
	AppRole *AppRole `yaml:"approle"`
	// Kubernetes logs in with Kubernetes auth instead of a token (the service account JWT is read at each login).
	Kubernetes *struct {
		Role    string `yaml:"role"`
		Mount   string `yaml:"mount"`
		JWTFile string `yaml:"jwt_file"`
	} `yaml:"kubernetes"`
	// Retention keeps a retired key version readable this long before it is soft-deleted (default 720h; 0 keeps it
	// until Vault's max_versions prunes it).
	Retention *Duration `yaml:"retention"`
	// LeaseTTL is how long a rotator's lock on a deployment holds without renewal (default 60s).
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// AppRole credentials, by reference only.
type AppRole struct {
	Mount        string `yaml:"mount"`
	RoleID       string `yaml:"role_id"`
	RoleIDFile   string `yaml:"role_id_file"`
	SecretIDFile string `yaml:"secret_id_file"`
}

// Deployment is one set of Qdrant nodes that share keys.
type Deployment struct {
	Name string `yaml:"name"`
	// Mode is how keys reach the nodes: "env" (recreate the container), "file" (rewrite a mounted config file) or
	// "kubernetes" (write the Secret of a StatefulSet and evict its pods one at a time).
	Mode string `yaml:"mode"`
	// Kubernetes names the StatefulSet and its Secret in mode kubernetes.
	Kubernetes *Kubernetes `yaml:"kubernetes"`
	// Containers names the nodes' containers, in restart order; or Label selects them (sorted by name).
	Containers []string `yaml:"containers"`
	Label      string   `yaml:"label"`
	// ConfigPath is, in file mode, the config file inside the containers (e.g. /qdrant/config/local.yaml).
	ConfigPath string `yaml:"config_path"`
	// URLs maps a container to the REST URL the rotator checks it at (default: the 127.0.0.1 port Docker
	// published for 6333).
	URLs map[string]string `yaml:"urls"`
	TLS  *TLS              `yaml:"tls"`
	// Docker is the Docker Engine of the deployment's nodes (default: the DOCKER_* environment).
	Docker *DockerEngine `yaml:"docker"`
	// DockerHosts gives containers an engine of their own, overriding Docker.
	DockerHosts map[string]DockerEngine `yaml:"docker_hosts"`
	// Grace is the wait between publishing a new key and dropping the old one (default 60s).
	Grace *Duration `yaml:"grace"`
	// ReadyTimeout bounds the wait for one node to come back and pass its checks (default 60s).
	ReadyTimeout Duration `yaml:"ready_timeout"`
	// StopTimeout bounds a node's graceful stop before it is killed (default 30s).
	StopTimeout Duration `yaml:"stop_timeout"`
	// ReadOnly is "keep" (default: the read-only slot is never changed) or "rotate" (rotated with the admin key,
	// read-only clients bridged by a read JWT; turns jwt_rbac on).
	ReadOnly string `yaml:"read_only"`
	// Keys are named credentials, each published at its own Vault path: full access maps to the admin key,
	// read-only and collection-scoped access to JWTs signed with the admin key (turns jwt_rbac on).
	Keys map[string]NamedKey `yaml:"keys"`
	// KeyTTL is the lifetime (exp) of the JWTs minted for named keys (default 720h); each rotation mints new ones.
	KeyTTL Duration `yaml:"key_ttl"`
	// Consumers state each consumer class's expected lag, the time from a new key's publication until the slowest
	// member of the class uses it; the grace must cover the largest.
	Consumers map[string]Consumer `yaml:"consumers"`

	// Cluster says the nodes form one Qdrant cluster (cluster.enabled): preflight refuses an unsafe rolling restart,
	// followers restart before the leader, each node must be back with every replica Active before the next.
	Cluster *ClusterSettings `yaml:"cluster"`

	// Schedule is a standard 5-field cron expression for the daemon ("" = none).
	Schedule string `yaml:"schedule"`
	// TimeZone is the schedule's IANA time zone (default UTC).
	TimeZone string `yaml:"timezone"`
	// Jitter delays each scheduled run by up to this much (stable per deployment).
	Jitter Duration `yaml:"jitter"`
	// Windows limit when scheduled rotations may start.
	Windows []Window `yaml:"windows"`
	// MaxAge rotates a key older than this at the next allowed moment (0 = no limit).
	MaxAge Duration `yaml:"max_age"`
}

// ClusterSettings describe a Qdrant cluster deployment.
type ClusterSettings struct {
	// InternalAuth says the peers run with service.enforce_internal_auth (Qdrant >= 1.18): 3 restarts per peer.
	InternalAuth bool `yaml:"internal_auth"`
	// AcceptDowntime rotates even with collections of replication factor 1 (their shards are unavailable while
	// their node restarts).
	AcceptDowntime bool `yaml:"accept_downtime"`
}

// Window is a time-of-day range ("02:00"-"05:00"; an end before the start spans midnight) on some days.
type Window struct {
	Days  []string `yaml:"days"` // mon, tue, ... (empty: every day)
	Start string   `yaml:"start"`
	End   string   `yaml:"end"`
}

// NamedKey is one named credential's permissions.
type NamedKey struct {
	Read  bool `yaml:"read"`
	Write bool `yaml:"write"`
	// Collections limits the key to these collections (default: all).
	Collections []string `yaml:"collections"`
	// TTL overrides the deployment's key_ttl for this key.
	TTL Duration `yaml:"ttl"`
}

// Consumer is a class of consumers and how long it takes to move to a new key: for Vault Agent, its
// static_secret_render_interval (it re-reads KV at 0.85-0.95 of it) plus the app's reload time; or a measured lag.
type Consumer struct {
	RenderInterval Duration `yaml:"render_interval"`
	Reload         Duration `yaml:"reload"`
	Lag            Duration `yaml:"lag"`
}

// MaxLag is the consumer's lag: Lag if set, else RenderInterval + Reload.
func (c Consumer) MaxLag() time.Duration {
	if c.Lag > 0 {
		return c.Lag.Std()
	}
	return c.RenderInterval.Std() + c.Reload.Std()
}

// TLS for checking nodes over HTTPS.
type TLS struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// Duration is a time.Duration written as "90s", "5m", "1h30m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 90s, 5m, 1h30m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Load reads, parses and validates a config file; relative paths in it resolve against its folder. It is the one
// validation path: `rotator check`, `rotator daemon` and `rotator rotate` all accept or refuse a file through it.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := parse(data)
	if errors.Is(err, errEmpty) {
		return nil, fmt.Errorf("config file %s is empty", path)
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.resolvePaths(dir)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse parses and validates config YAML (relative paths stay relative to the working directory).
func Parse(data []byte) (*Config, error) {
	c, err := parse(data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var errEmpty = errors.New("the config is empty")

// parse applies the defaults, then the file, strictly (one document; unknown keys are errors), then the defaults of
// what the file left unset.
func parse(data []byte) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errEmpty
		}
		return nil, fmt.Errorf("parse: %w", withLine(data, err))
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("parse: %w", withLine(data, err))
		}
		return nil, fmt.Errorf("parse: line %d: a second YAML document; a config file holds one", next.Line)
	}
	c.defaultsUnset()
	return c, nil
}

// defaultsUnset gives the settings the file left out (or set to zero) their defaults.
func (c *Config) defaultsUnset() {
	if c.Daemon.Listen == "" {
		c.Daemon.Listen = "127.0.0.1:8080"
	}
	if c.Daemon.PollInterval == 0 {
		c.Daemon.PollInterval = Duration(30 * time.Second)
	}
	if c.Daemon.AuditInterval == 0 {
		c.Daemon.AuditInterval = Duration(time.Hour)
	}
	if c.Daemon.MaxParallel == 0 {
		c.Daemon.MaxParallel = Parallel(rotation.DefaultMaxParallel)
	}
	if c.Daemon.DeniedAlert.Threshold == 0 {
		c.Daemon.DeniedAlert.Threshold = 20
	}
	if c.Daemon.DeniedAlert.Window == 0 {
		c.Daemon.DeniedAlert.Window = Duration(5 * time.Minute)
	}
	for i := range c.Deployments {
		d := &c.Deployments[i]
		if d.Grace == nil {
			g := Duration(60 * time.Second)
			d.Grace = &g
		}
		if d.ReadyTimeout == 0 {
			d.ReadyTimeout = Duration(60 * time.Second)
		}
		if d.StopTimeout == 0 {
			d.StopTimeout = Duration(30 * time.Second)
		}
		if d.ReadOnly == "" {
			d.ReadOnly = "keep"
		}
		if d.KeyTTL == 0 {
			d.KeyTTL = Duration(720 * time.Hour)
		}
		if d.Kubernetes != nil {
			d.Kubernetes.setDefaults()
		}
	}
}

// Default is the configuration before the file is read.
func Default() *Config {
	r := Duration(720 * time.Hour)
	return &Config{Vault: Vault{Mount: "secret", Prefix: "qdrant", Retention: &r, LeaseTTL: Duration(60 * time.Second)}}
}

// Parse returns the window's days and its start and end as offsets from midnight.
func (w Window) Parse() ([]time.Weekday, [2]time.Duration, error) {
	names := map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}
	var days []time.Weekday
	for _, d := range w.Days {
		wd, ok := names[strings.ToLower(d)]
		if !ok {
			return nil, [2]time.Duration{}, fmt.Errorf("day %q: want mon, tue, wed, thu, fri, sat or sun", d)
		}
		days = append(days, wd)
	}
	var span [2]time.Duration
	for i, v := range []string{w.Start, w.End} {
		t, err := time.Parse("15:04", v)
		if err != nil {
			return nil, span, fmt.Errorf("time %q: want HH:MM", v)
		}
		span[i] = time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
	}
	if span[0] == span[1] {
		return nil, span, fmt.Errorf("start and end are both %s", w.Start)
	}
	return days, span, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Find returns the deployment called name.
func (c *Config) Find(name string) (*Deployment, error) {
	for i := range c.Deployments {
		if c.Deployments[i].Name == name {
			return &c.Deployments[i], nil
		}
	}
	return nil, fmt.Errorf("no deployment %q in the config", name)
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Vault.TokenFile)
	for i := range c.Daemon.Tokens {
		abs(&c.Daemon.Tokens[i].File)
	}
	for i := range c.Daemon.Webhooks {
		abs(&c.Daemon.Webhooks[i].SecretFile)
	}
	if t := c.Daemon.TLS; t != nil {
		abs(&t.CertFile)
		abs(&t.KeyFile)
	}
	if c.Vault.AppRole != nil {
		abs(&c.Vault.AppRole.RoleIDFile)
		abs(&c.Vault.AppRole.SecretIDFile)
	}
	for i := range c.Deployments {
		if t := c.Deployments[i].TLS; t != nil {
			abs(&t.CAFile)
			abs(&t.CertFile)
			abs(&t.KeyFile)
		}
		if e := c.Deployments[i].Docker; e != nil {
			abs(&e.CertPath)
		}
		for name, e := range c.Deployments[i].DockerHosts {
			abs(&e.CertPath)
			c.Deployments[i].DockerHosts[name] = e
		}
		if k := c.Deployments[i].Kubernetes; k != nil {
			abs(&k.Kubeconfig)
		}
	}
}
