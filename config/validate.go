package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/qdrantrotator/rotator/rotation"
)

// fieldError is one wrong setting: the field's path in the file (vault.lease_ttl, daemon.tokens[0].env,
// deployments[0] (prod).keys.search) and what is wrong with it. Validate joins one per problem.
type fieldError struct {
	Field, Problem string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Problem }

var (
	// collectionName is what Qdrant allows in a collection name (no path separators or control characters).
	collectionName = regexp.MustCompile(`^[^/\\\x00-\x1f*?<>|:"]{1,255}$`)
	vaultPath      = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)
	labelSelector  = regexp.MustCompile(`^[^=\s]+(=[^\s]*)?$`)
	envName        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks every field and names each one that is wrong: everything `rotator daemon` and `rotator rotate`
// check at start-up without contacting Vault or Docker, including the content of the files the daemon needs from
// its first moment (webhook secrets, TLS certificates and keys, CA bundles). Names and schedules are checked by the
// rotation package's own rules, so the file `rotator check` accepts is one the daemon runs.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &fieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	c.Vault.check(bad)
	c.Daemon.check(bad)
	if len(c.Deployments) == 0 {
		bad("deployments", "at least one deployment is required")
	}
	seen := map[string]bool{}
	for i, d := range c.Deployments {
		f := deploymentField(i, d.Name)
		if err := rotation.ValidateName(d.Name); err != nil {
			bad(f+".name", "%v", err)
		} else if seen[d.Name] {
			bad(f+".name", "%q is used by another deployment", d.Name)
		}
		seen[d.Name] = true
		d.check(bad, f, c.Daemon.PollInterval.Std())
	}
	checkSharedContainers(bad, c.Deployments)
	return errors.Join(errs...)
}

// deploymentField is how messages name deployment i: by index, and by name once it has one.
func deploymentField(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("deployments[%d]", i)
	}
	return fmt.Sprintf("deployments[%d] (%s)", i, label(name))
}

// label is a name from the file as a message shows it: as written, or quoted when it holds a line break or
// another character that does not print.
func label(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

func (v Vault) check(bad reporter) {
	if a := v.Address; a != "" && !isHTTPURL(a) {
		bad("vault.address", "%q: want an http:// or https:// URL", a)
	}
	if !vaultPath.MatchString(v.Mount) {
		bad("vault.mount", "%q is not a mount path", v.Mount)
	}
	if v.Prefix != "" && !vaultPath.MatchString(v.Prefix) {
		bad("vault.prefix", "%q is not a path (letters, digits, _ . - separated by /)", v.Prefix)
	}
	if v.LeaseTTL.Std() < 3*time.Second {
		bad("vault.lease_ttl", "%s is shorter than 3s", v.LeaseTTL.Std())
	}
	if v.Retention != nil && v.Retention.Std() < 0 {
		bad("vault.retention", "%s is negative", v.Retention.Std())
	}
	v.checkLogin(bad)
}

// checkLogin checks the one way of logging in to Vault: a token (VAULT_TOKEN or token_file), AppRole, or
// Kubernetes.
func (v Vault) checkLogin(bad reporter) {
	if k := v.Kubernetes; k != nil {
		if v.TokenFile != "" || v.AppRole != nil {
			bad("vault", "kubernetes excludes token_file and approle")
		}
		if k.Role == "" {
			bad("vault.kubernetes.role", "is required")
		}
	}
	if a := v.AppRole; a != nil {
		if v.TokenFile != "" {
			bad("vault", "token_file and approle exclude each other")
		}
		if (a.RoleID == "") == (a.RoleIDFile == "") {
			bad("vault.approle", "set exactly one of role_id and role_id_file")
		}
		if a.SecretIDFile == "" {
			bad("vault.approle.secret_id_file", "is required (the secret id is never written inline)")
		}
	}
}

// maxMaxParallel bounds daemon.max_parallel: beyond it one daemon restarts containers, and writes to Vault, faster
// than an estate should change at once, and a typo (1000 for 10) would rotate a whole fleet together.
const maxMaxParallel = 64

func (d Daemon) check(bad reporter) {
	if d.PollInterval.Std() < 100*time.Millisecond {
		bad("daemon.poll_interval", "%s is shorter than 100ms", d.PollInterval.Std())
	}
	if d.AuditInterval.Std() < time.Minute {
		bad("daemon.audit_interval", "%s is shorter than 1m (each audit probes every node and reads Vault)", d.AuditInterval.Std())
	}
	if a := d.DeniedAlert; a.Threshold < 1 {
		bad("daemon.denied_alert.threshold", "%d: want 1 or more refused requests", a.Threshold)
	}
	if w := d.DeniedAlert.Window.Std(); w < time.Second || w > 24*time.Hour {
		bad("daemon.denied_alert.window", "%s: want 1s to 24h", w)
	}
	if d.MaxParallel < 1 || d.MaxParallel > maxMaxParallel {
		bad("daemon.max_parallel", "%d: want 1 to %d rotations at once", d.MaxParallel, maxMaxParallel)
	}
	if _, port, err := net.SplitHostPort(d.Listen); err != nil || port == "" {
		bad("daemon.listen", "%q: want host:port (like 127.0.0.1:8080)", d.Listen)
	}
	if t := d.TLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			bad("daemon.tls", "cert_file and key_file are both required")
		} else if err := checkKeyPair(t.CertFile, t.KeyFile); err != nil {
			bad("daemon.tls", "%v", err)
		}
	}
	names := map[string]bool{}
	for i, t := range d.Tokens {
		t.check(bad, fmt.Sprintf("daemon.tokens[%d]", i), names)
	}
	for i, w := range d.Webhooks {
		w.check(bad, fmt.Sprintf("daemon.webhooks[%d]", i))
	}
}

// check checks one API token; names holds the names of the tokens before it.
func (t APIToken) check(bad reporter, f string, names map[string]bool) {
	if t.Name == "" || names[t.Name] {
		bad(f+".name", "%q is empty or used twice", t.Name)
	}
	names[t.Name] = true
	if t.Role != "admin" && t.Role != "read" {
		bad(f+".role", "%q: want admin or read", t.Role)
	}
	n := 0
	for _, v := range []string{t.File, t.Env, t.Vault} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		bad(f, "set exactly one of file, env and vault (a token is never written inline)")
	}
	if t.Env != "" && !envName.MatchString(t.Env) {
		bad(f+".env", "%q is not an environment variable name", t.Env)
	}
	if t.Vault != "" && !vaultPath.MatchString(t.Vault) {
		bad(f+".vault", "%q is not a path under the Vault prefix (letters, digits, _ . - separated by /)", t.Vault)
	}
}

func (w Webhook) check(bad reporter, f string) {
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

// check checks one deployment but its name, which Validate checks against the others.
func (d Deployment) check(bad reporter, f string, poll time.Duration) {
	if d.Mode == "kubernetes" {
		d.checkKubernetes(bad, f)
	} else {
		d.checkMode(bad, f)
		d.checkNodes(bad, f)
		d.checkDocker(bad, f)
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
		d.Keys[name].check(bad, f+".keys."+label(name), name)
	}
	checkJWTLifetimes(bad, f, d, poll)
	d.checkConsumers(bad, f)
	if d.TLS != nil {
		d.TLS.check(bad, f+".tls")
	}
}

// checkMode checks how keys reach the nodes.
func (d Deployment) checkMode(bad reporter, f string) {
	if d.Kubernetes != nil {
		bad(f+".kubernetes", "is for mode kubernetes only")
	}
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
		bad(f+".mode", "%q: want env, file or kubernetes", d.Mode)
	}
}

// checkNodes checks how the nodes are found (containers or label) and the URLs they are checked at.
func (d Deployment) checkNodes(bad reporter, f string) {
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
			bad(f+".urls."+label(n), "%q: want an http:// or https:// URL", u)
		}
		if len(d.Containers) > 0 && !names[n] {
			bad(f+".urls."+label(n), "names no container of the deployment")
		}
	}
}

// check checks one named key (kf names it in messages).
func (k NamedKey) check(bad reporter, kf, name string) {
	if err := rotation.ValidateName(name); err != nil {
		bad(kf, "the name %v", err)
	}
	if !k.Read {
		bad(kf, "read: false: every key reads; a key that writes without reading is not expressible in Qdrant")
	}
	seen := map[string]bool{}
	for j, c := range k.Collections {
		switch {
		case !collectionName.MatchString(c):
			bad(fmt.Sprintf("%s.collections[%d]", kf, j), "%q is not a collection name", c)
		case seen[c]:
			bad(fmt.Sprintf("%s.collections[%d]", kf, j), "%q is listed twice", c)
		}
		seen[c] = true
	}
	if k.Collections != nil && len(k.Collections) == 0 {
		bad(kf+".collections", "is empty: leave it out for all collections")
	}
	if k.TTL != 0 && k.TTL.Std() < time.Minute {
		bad(kf+".ttl", "%s is shorter than 1m", k.TTL.Std())
	}
}

// checkConsumers checks each consumer class, and that the grace covers the slowest.
func (d Deployment) checkConsumers(bad reporter, f string) {
	var worst string
	var lag time.Duration
	for _, name := range sortedKeys(d.Consumers) {
		c := d.Consumers[name]
		if c.Lag < 0 || c.RenderInterval < 0 || c.Reload < 0 {
			bad(f+".consumers."+label(name), "durations must not be negative")
		}
		if c.MaxLag() <= 0 {
			bad(f+".consumers."+label(name), "set lag, or render_interval (and reload)")
		}
		if c.MaxLag() > lag {
			worst, lag = name, c.MaxLag()
		}
	}
	if worst == "" || d.Grace.Std() >= lag {
		return
	}
	c := d.Consumers[worst]
	how := fmt.Sprintf("lag %s", c.Lag.Std())
	if c.Lag == 0 {
		how = fmt.Sprintf("render_interval %s + reload %s", c.RenderInterval.Std(), c.Reload.Std())
	}
	bad(f+".grace", "%s is shorter than the largest consumer lag, %s of consumer %s (%s), by %s: the old key would be dropped before those consumers can have moved",
		d.Grace.Std(), lag, label(worst), how, lag-d.Grace.Std())
}

// check checks the TLS settings the nodes are checked with (f names the tls section).
func (t *TLS) check(bad reporter, f string) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad(f, "cert_file and key_file go together")
	} else if t.CertFile != "" {
		if err := checkKeyPair(t.CertFile, t.KeyFile); err != nil {
			bad(f, "%v", err)
		}
	}
	if t.CAFile != "" {
		if err := checkCAFile(t.CAFile); err != nil {
			bad(f+".ca_file", "%v", err)
		}
	}
}
