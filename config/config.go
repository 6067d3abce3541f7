// Package config reads the rotator's YAML configuration: defaults, a strict parse (unknown fields are errors), then
// validation with messages that name the field. Secrets are never inline: the Vault token comes from VAULT_TOKEN or
// a file, the AppRole secret id from a file. Only cmd/rotator imports this package.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
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
	// Tokens are the API's bearer tokens; several may be valid at once, so a token can itself be rotated.
	Tokens []APIToken `yaml:"tokens"`
	// Webhooks receive every audit event, signed.
	Webhooks []Webhook `yaml:"webhooks"`
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
	// Mode is how keys reach the nodes: "env" (recreate the container) or "file" (rewrite a mounted config file).
	Mode string `yaml:"mode"`
	// Containers names the nodes' containers, in restart order; or Label selects them (sorted by name).
	Containers []string `yaml:"containers"`
	Label      string   `yaml:"label"`
	// ConfigPath is, in file mode, the config file inside the containers (e.g. /qdrant/config/local.yaml).
	ConfigPath string `yaml:"config_path"`
	// URLs maps a container to the REST URL the rotator checks it at (default: the 127.0.0.1 port Docker
	// published for 6333).
	URLs map[string]string `yaml:"urls"`
	TLS  *TLS              `yaml:"tls"`
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

// parse applies the defaults, then the file, strictly.
func parse(data []byte) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errEmpty
		}
		return nil, fmt.Errorf("parse: %w", err)
	}
	if c.Daemon.Listen == "" {
		c.Daemon.Listen = "127.0.0.1:8080"
	}
	if c.Daemon.PollInterval == 0 {
		c.Daemon.PollInterval = Duration(30 * time.Second)
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
	}
	return c, nil
}

// Default is the configuration before the file is read.
func Default() *Config {
	r := Duration(720 * time.Hour)
	return &Config{Vault: Vault{Mount: "secret", Prefix: "qdrant", Retention: &r, LeaseTTL: Duration(60 * time.Second)}}
}

var (
	deploymentName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// collectionName is what Qdrant allows in a collection name (no path separators or control characters).
	collectionName = regexp.MustCompile(`^[^/\\\x00-\x1f*?<>|:"]{1,255}$`)
	vaultPath      = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)
	labelSelector  = regexp.MustCompile(`^[^=\s]+(=[^\s]*)?$`)
	envName        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks every field and names each one that is wrong: everything `rotator daemon` and `rotator rotate`
// check at start-up without contacting Vault or Docker, including the content of the files the daemon needs from
// its first moment (webhook secrets, TLS certificates and keys, CA bundles).
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if a := c.Vault.Address; a != "" && !isHTTPURL(a) {
		bad("vault.address", "%q: want an http:// or https:// URL", a)
	}
	if !vaultPath.MatchString(c.Vault.Mount) {
		bad("vault.mount", "%q is not a mount path", c.Vault.Mount)
	}
	if c.Vault.Prefix != "" && !vaultPath.MatchString(c.Vault.Prefix) {
		bad("vault.prefix", "%q is not a path (letters, digits, _ . - separated by /)", c.Vault.Prefix)
	}
	if c.Vault.LeaseTTL.Std() < 3*time.Second {
		bad("vault.lease_ttl", "%s is shorter than 3s", c.Vault.LeaseTTL.Std())
	}
	if c.Vault.Retention != nil && c.Vault.Retention.Std() < 0 {
		bad("vault.retention", "%s is negative", c.Vault.Retention.Std())
	}
	if k := c.Vault.Kubernetes; k != nil {
		if c.Vault.TokenFile != "" || c.Vault.AppRole != nil {
			bad("vault", "kubernetes excludes token_file and approle")
		}
		if k.Role == "" {
			bad("vault.kubernetes.role", "is required")
		}
	}
	if a := c.Vault.AppRole; a != nil {
		if c.Vault.TokenFile != "" {
			bad("vault", "token_file and approle exclude each other")
		}
		if (a.RoleID == "") == (a.RoleIDFile == "") {
			bad("vault.approle", "set exactly one of role_id and role_id_file")
		}
		if a.SecretIDFile == "" {
			bad("vault.approle.secret_id_file", "is required (the secret id is never written inline)")
		}
	}
	if len(c.Deployments) == 0 {
		bad("deployments", "at least one deployment is required")
	}
	if c.Daemon.PollInterval.Std() < 100*time.Millisecond {
		bad("daemon.poll_interval", "%s is shorter than 100ms", c.Daemon.PollInterval.Std())
	}
	if _, port, err := net.SplitHostPort(c.Daemon.Listen); err != nil || port == "" {
		bad("daemon.listen", "%q: want host:port (like 127.0.0.1:8080)", c.Daemon.Listen)
	}
	if t := c.Daemon.TLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			bad("daemon.tls", "cert_file and key_file are both required")
		} else if err := checkKeyPair(t.CertFile, t.KeyFile); err != nil {
			bad("daemon.tls", "%v", err)
		}
	}
	tokenNames := map[string]bool{}
	for i, tok := range c.Daemon.Tokens {
		f := fmt.Sprintf("daemon.tokens[%d]", i)
		if tok.Name == "" || tokenNames[tok.Name] {
			bad(f+".name", "%q is empty or used twice", tok.Name)
		}
		tokenNames[tok.Name] = true
		if tok.Role != "admin" && tok.Role != "read" {
			bad(f+".role", "%q: want admin or read", tok.Role)
		}
		n := 0
		for _, v := range []string{tok.File, tok.Env, tok.Vault} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			bad(f, "set exactly one of file, env and vault (a token is never written inline)")
		}
		if tok.Env != "" && !envName.MatchString(tok.Env) {
			bad(f+".env", "%q is not an environment variable name", tok.Env)
		}
		if tok.Vault != "" && !vaultPath.MatchString(tok.Vault) {
			bad(f+".vault", "%q is not a path under the Vault prefix (letters, digits, _ . - separated by /)", tok.Vault)
		}
	}
	for i, w := range c.Daemon.Webhooks {
		f := fmt.Sprintf("daemon.webhooks[%d]", i)
		if !isHTTPURL(w.URL) {
			// Not quoted: webhook URLs often carry a secret in their path.
			bad(f+".url", "want an http:// or https:// URL with a host")
		}
		if w.SecretFile == "" {
			bad(f+".secret_file", "is required: events are signed")
		} else if err := checkSecretFile(w.SecretFile); err != nil {
			bad(f+".secret_file", "%v", err)
		}
	}
	seen := map[string]bool{}
	for i, d := range c.Deployments {
		f := fmt.Sprintf("deployments[%d]", i)
		if d.Name != "" {
			f = fmt.Sprintf("deployments[%d] (%s)", i, d.Name)
		}
		switch {
		case !deploymentName.MatchString(d.Name):
			bad(f+".name", "%q: want 1-63 characters from [a-z0-9_-], starting with a letter or digit", d.Name)
		case seen[d.Name]:
			bad(f+".name", "%q is used by another deployment", d.Name)
		}
		seen[d.Name] = true
		switch d.Mode {
		case "env":
			if d.ConfigPath != "" {
				bad(f+".config_path", "is for mode file only")
			}
		case "file":
			if !strings.HasPrefix(d.ConfigPath, "/") {
				bad(f+".config_path", "%q: mode file needs the config file's absolute path inside the containers", d.ConfigPath)
			}
		default:
			bad(f+".mode", "%q: want env or file", d.Mode)
		}
		if (len(d.Containers) == 0) == (d.Label == "") {
			bad(f, "set exactly one of containers and label")
		}
		if d.Label != "" && !labelSelector.MatchString(d.Label) {
			bad(f+".label", "%q: want key or key=value", d.Label)
		}
		names := map[string]bool{}
		for j, n := range d.Containers {
			if n == "" || names[n] {
				bad(fmt.Sprintf("%s.containers[%d]", f, j), "%q is empty or listed twice", n)
			}
			names[n] = true
		}
		for _, n := range sortedKeys(d.URLs) {
			u := d.URLs[n]
			if !isHTTPURL(u) {
				bad(f+".urls."+n, "%q: want an http:// or https:// URL", u)
			}
			if len(d.Containers) > 0 && !names[n] {
				bad(f+".urls."+n, "names no container of the deployment")
			}
		}
		if d.Grace.Std() < 0 {
			bad(f+".grace", "%s is negative", d.Grace.Std())
		}
		checkBounds(bad, f+".ready_timeout", d.ReadyTimeout.Std(), minReadyTimeout, maxReadyTimeout,
			"a node gets this long to come back and pass its checks")
		checkBounds(bad, f+".stop_timeout", d.StopTimeout.Std(), minStopTimeout, maxStopTimeout,
			"Docker takes whole seconds: below 1s it kills Qdrant at once")
		checkSchedule(bad, f, d)
		if d.ReadOnly != "keep" && d.ReadOnly != "rotate" {
			bad(f+".read_only", "%q: want keep or rotate", d.ReadOnly)
		}
		if d.KeyTTL.Std() < time.Minute {
			bad(f+".key_ttl", "%s is shorter than 1m", d.KeyTTL.Std())
		}
		for _, name := range sortedKeys(d.Keys) {
			k := d.Keys[name]
			kf := f + ".keys." + name
			if !deploymentName.MatchString(name) {
				bad(kf, "the name %q: want 1-63 characters from [a-z0-9_-], starting with a letter or digit", name)
			}
			if !k.Read {
				bad(kf, "read: false: every key reads; a key that writes without reading is not expressible in Qdrant")
			}
			seenCol := map[string]bool{}
			for j, c := range k.Collections {
				switch {
				case !collectionName.MatchString(c):
					bad(fmt.Sprintf("%s.collections[%d]", kf, j), "%q is not a collection name", c)
				case seenCol[c]:
					bad(fmt.Sprintf("%s.collections[%d]", kf, j), "%q is listed twice", c)
				}
				seenCol[c] = true
			}
			if k.Collections != nil && len(k.Collections) == 0 {
				bad(kf+".collections", "is empty: leave it out for all collections")
			}
			if k.TTL != 0 && k.TTL.Std() < time.Minute {
				bad(kf+".ttl", "%s is shorter than 1m", k.TTL.Std())
			}
		}
		checkJWTLifetimes(bad, f, d, c.Daemon.PollInterval.Std())
		var worst string
		var lag time.Duration
		for _, name := range sortedKeys(d.Consumers) {
			c := d.Consumers[name]
			if c.Lag < 0 || c.RenderInterval < 0 || c.Reload < 0 {
				bad(f+".consumers."+name, "durations must not be negative")
			}
			if c.MaxLag() <= 0 {
				bad(f+".consumers."+name, "set lag, or render_interval (and reload)")
			}
			if c.MaxLag() > lag {
				worst, lag = name, c.MaxLag()
			}
		}
		if worst != "" && d.Grace.Std() < lag {
			c := d.Consumers[worst]
			how := fmt.Sprintf("lag %s", c.Lag.Std())
			if c.Lag == 0 {
				how = fmt.Sprintf("render_interval %s + reload %s", c.RenderInterval.Std(), c.Reload.Std())
			}
			bad(f+".grace", "%s is shorter than the largest consumer lag, %s of consumer %s (%s), by %s: the old key would be dropped before those consumers can have moved",
				d.Grace.Std(), lag, worst, how, lag-d.Grace.Std())
		}
		if t := d.TLS; t != nil {
			if (t.CertFile == "") != (t.KeyFile == "") {
				bad(f+".tls", "cert_file and key_file go together")
			} else if t.CertFile != "" {
				if err := checkKeyPair(t.CertFile, t.KeyFile); err != nil {
					bad(f+".tls", "%v", err)
				}
			}
			if t.CAFile != "" {
				if err := checkCAFile(t.CAFile); err != nil {
					bad(f+".tls.ca_file", "%v", err)
				}
			}
		}
	}
	checkSharedContainers(bad, c.Deployments)
	return errors.Join(errs...)
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
	}
}
