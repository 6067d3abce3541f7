package qdrantctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// Mode is how keys reach a node.
type Mode string

// Modes.
const (
	// ModeEnv recreates the container with only its QDRANT__SERVICE__*API_KEY variables changed.
	ModeEnv Mode = "env"
	// ModeFile rewrites a host-mounted Qdrant YAML config file and restarts the container.
	ModeFile Mode = "file"
)

// Environment variables of the key slots (Qdrant matches them case-insensitively).
const (
	envAPIKey      = "QDRANT__SERVICE__API_KEY"
	envAltAPIKey   = "QDRANT__SERVICE__ALT_API_KEY"
	envReadOnlyKey = "QDRANT__SERVICE__READ_ONLY_API_KEY"
	envJWTRBAC     = "QDRANT__SERVICE__JWT_RBAC"
)

// NodeOptions configure one node.
type NodeOptions struct {
	// Container is the container's name.
	Container string
	Mode      Mode
	// ConfigPath is, in file mode, the config file's path inside the container (e.g. /qdrant/config/local.yaml);
	// the host path is found from the container's bind mounts.
	ConfigPath string
	// URL is the node's REST base URL; empty: http(s)://<the engine's PublishHost>:<host port published for 6333>.
	URL string
	// HTTPS makes the derived URL https.
	HTTPS bool
	// StopTimeout bounds a graceful stop before SIGKILL (default 30 s, Qdrant's own drain bound).
	StopTimeout time.Duration
	// TLS is used for HTTPS checks (CA, client certificate).
	TLS *tls.Config
	// RequestTag, when set, is the x-request-id of the node's own requests (Probe, AuditLog). Qdrant's audit log
	// keeps it as tracing_id, so the rotator's audit-log watch can leave its own probes out (the open check sends a
	// key never issued at every poll, which is no client's doing).
	RequestTag string
}

// Node is a Qdrant node in a Docker container. It implements rotation.Node.
type Node struct {
	eng  *Engine
	opt  NodeOptions
	http *http.Client

	mu  sync.Mutex
	url string
}

var _ rotation.Node = (*Node)(nil)

// NewNode returns a node of the Engine.
func NewNode(eng *Engine, opt NodeOptions) (*Node, error) {
	switch opt.Mode {
	case ModeEnv:
	case ModeFile:
		if !filepath.IsAbs(opt.ConfigPath) {
			return nil, fmt.Errorf("node %s: config_path %q must be an absolute path inside the container", opt.Container, opt.ConfigPath)
		}
	default:
		return nil, fmt.Errorf("node %s: mode %q: want env or file", opt.Container, opt.Mode)
	}
	if opt.StopTimeout <= 0 {
		opt.StopTimeout = 30 * time.Second
	}
	return &Node{eng: eng, opt: opt, http: newHTTPClient(opt.TLS), url: opt.URL}, nil
}

// TLSConfig builds the TLS settings for HTTPS checks from PEM files: a CA bundle (empty: the system roots) and an
// optional client certificate and key.
func TLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls: cert_file and key_file go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Name implements rotation.Node.
func (n *Node) Name() string { return n.opt.Container }

// Method implements rotation.Node.
func (n *Node) Method() string {
	if n.opt.Mode == ModeFile {
		return "file: rewrite " + n.opt.ConfigPath + " and restart the container"
	}
	return "env: recreate the container with new QDRANT__SERVICE__*API_KEY variables"
}

// Keys implements rotation.Node: the slots the container will load at its next start.
func (n *Node) Keys(ctx context.Context) (rotation.Slots, error) {
	info, err := n.eng.Inspect(ctx, n.opt.Container)
	if err != nil {
		return rotation.Slots{}, n.wrap(err)
	}
	envKeys := slotsFromEnv(info.Env)
	if n.opt.Mode == ModeEnv {
		if err := notComposeManaged(info); err != nil {
			return rotation.Slots{}, fmt.Errorf("%s: %w", n.label(), err)
		}
		if err := storageMounted(info); err != nil {
			return rotation.Slots{}, fmt.Errorf("%s: %w", n.label(), err)
		}
		s := toSlots(envKeys)
		s.InternalAuth, _ = internalAuthFromEnv(info.Env)
		return s, nil
	}
	if envKeys != (ConfigKeys{}) {
		return rotation.Slots{}, fmt.Errorf("%s: its environment sets QDRANT__SERVICE__*API_KEY or JWT_RBAC, which overrides the config file; use mode env", n.label())
	}
	path, err := n.hostConfigPath(info)
	if err != nil {
		return rotation.Slots{}, err
	}
	file, err := readNodeFile(path)
	if err != nil {
		return rotation.Slots{}, fmt.Errorf("%s: %w", n.label(), err)
	}
	// What Apply would refuse is refused here, at preflight, before any node is touched.
	if err := checkEditable(path, info.User, file); err != nil {
		return rotation.Slots{}, fmt.Errorf("%s: %w", n.label(), err)
	}
	s := toSlots(file.keys)
	s.InternalAuth = file.internalAuth
	if v, set := internalAuthFromEnv(info.Env); set {
		s.InternalAuth = v // the environment overrides the file
	}
	return s, nil
}

// internalAuthEnv is the variable that sets service.enforce_internal_auth.
const internalAuthEnv = "QDRANT__SERVICE__ENFORCE_INTERNAL_AUTH"

// internalAuthFromEnv reads enforce_internal_auth from an environment (names case-insensitive, later wins).
func internalAuthFromEnv(env []string) (value, set bool) {
	for _, kv := range env {
		name, v, _ := strings.Cut(kv, "=")
		if strings.EqualFold(name, internalAuthEnv) {
			value, set = truthy(v), true
		}
	}
	return value, set
}

// Recover implements rotation.Node: it finishes or undoes a container swap a crash interrupted.
func (n *Node) Recover(ctx context.Context) error {
	return n.wrap(n.eng.RecoverRecreate(ctx, n.opt.Container))
}

// label names the node in messages: "node NAME", with its engine when the config names one ("node NAME on docker
// engine tcp://host:2376"; never user info or a credential).
func (n *Node) label() string {
	if n.eng != nil && n.eng.named {
		return "node " + n.opt.Container + " on docker engine " + n.eng.Name()
	}
	return "node " + n.opt.Container
}

// wrap prefixes an error of the node's engine with the node's label (nil stays nil).
func (n *Node) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", n.label(), err)
}

// Apply implements rotation.Node.
func (n *Node) Apply(ctx context.Context, s rotation.Slots) error {
	want := ConfigKeys{APIKey: s.APIKey.Reveal(), AltAPIKey: s.AltAPIKey.Reveal(), ReadOnlyAPIKey: s.ReadOnlyKey.Reveal(), JWTRBAC: s.JWTRBAC}
	if n.opt.Mode == ModeEnv {
		if err := n.eng.Recreate(ctx, n.opt.Container, func(env []string) []string { return withEnvKeys(env, want) }, n.opt.StopTimeout); err != nil {
			return fmt.Errorf("%s: %w", n.label(), err)
		}
	} else {
		info, err := n.eng.Inspect(ctx, n.opt.Container)
		if err != nil {
			return n.wrap(err)
		}
		path, err := n.hostConfigPath(info)
		if err != nil {
			return err
		}
		if err := writeNodeConfig(path, info.User, want); err != nil {
			return fmt.Errorf("%s: %w", n.label(), err)
		}
		if err := n.eng.Restart(ctx, n.opt.Container, n.opt.StopTimeout); err != nil {
			return fmt.Errorf("%s: %w", n.label(), err)
		}
	}
	n.mu.Lock()
	n.url = n.opt.URL // a published port may change with the container
	n.mu.Unlock()
	return nil
}

// Probe implements rotation.Node with GET /collections, an authenticated call (health endpoints skip auth).
func (n *Node) Probe(ctx context.Context, key rotation.Key) error {
	return n.endpoint().probe(ctx, key)
}

// endpoint is the node's REST API: at its configured URL or its published port, and found stopped when a request
// fails and the container is not running.
func (n *Node) endpoint() endpoint {
	return endpoint{label: n.label(), client: n.http, tag: n.opt.RequestTag, base: n.baseURL, lost: func(ctx context.Context) bool {
		n.mu.Lock()
		n.url = n.opt.URL // a recreated container may publish another port
		n.mu.Unlock()
		info, err := n.eng.Inspect(ctx, n.opt.Container)
		return err == nil && !info.Running
	}}
}

// baseURL is the configured URL, or the port Docker published for REST on the engine's PublishHost (127.0.0.1 for a
// local engine).
func (n *Node) baseURL(ctx context.Context) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.url != "" {
		return n.url, nil
	}
	info, err := n.eng.Inspect(ctx, n.opt.Container)
	if err != nil {
		return "", n.wrap(err)
	}
	if !info.Running {
		return "", fmt.Errorf("%s: %w", n.label(), rotation.ErrNodeDown)
	}
	port, err := n.eng.HostPort(ctx, info.ID, 6333)
	if err != nil {
		return "", fmt.Errorf("%s: no url configured and %w", n.label(), err)
	}
	scheme := "http"
	if n.opt.HTTPS {
		scheme = "https"
	}
	n.url = fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(n.eng.PublishHost(), strconv.Itoa(port)))
	return n.url, nil
}

// hostConfigPath finds the host file behind ConfigPath among the container's bind mounts (a file mount, or a
// folder mount holding it).
func (n *Node) hostConfigPath(info ContainerInfo) (string, error) {
	for _, m := range info.Mounts {
		if m.Type != "bind" {
			continue
		}
		if m.Destination == n.opt.ConfigPath {
			return m.Source, nil
		}
		if rel, ok := strings.CutPrefix(n.opt.ConfigPath, strings.TrimSuffix(m.Destination, "/")+"/"); ok {
			return filepath.Join(m.Source, rel), nil
		}
	}
	return "", fmt.Errorf("%s: config_path %s is not on a bind mount of the container; mount the file or its folder from the host", n.label(), n.opt.ConfigPath)
}

// anonymousVolume matches the names Docker gives volumes nobody named.
var anonymousVolume = regexp.MustCompile(`^[0-9a-f]{64}$`)

// storageMounted refuses env mode for a container whose storage lives in its own writable layer: recreating it
// would lose every point. The storage path is Qdrant's default (/qdrant/storage) unless the environment moves it.
func storageMounted(info ContainerInfo) error {
	path := "/qdrant/storage"
	for _, kv := range info.Env {
		if name, value, _ := strings.Cut(kv, "="); strings.EqualFold(name, "QDRANT__STORAGE__STORAGE_PATH") && value != "" {
			path = value
		}
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join("/qdrant", path)
	}
	for _, m := range info.Mounts {
		if d := strings.TrimSuffix(m.Destination, "/"); path == d || strings.HasPrefix(path, d+"/") {
			if m.Type == "volume" && anonymousVolume.MatchString(m.Name) {
				return fmt.Errorf("storage %s is on an anonymous volume, which a recreated container would not get back; give the volume a name or use mode file", path)
			}
			return nil
		}
	}
	return fmt.Errorf("storage %s is not on a volume or bind mount, so recreating the container (mode env) would lose its data; mount a volume there or use mode file", path)
}

// Labels docker compose (v1 and v2) puts on every container it creates.
const (
	composeProjectLabel = "com.docker.compose.project"
	composeServiceLabel = "com.docker.compose.service"
)

// notComposeManaged refuses env mode for a container docker compose manages: compose recreates it (`up
// --force-recreate`, a changed service, `down` then `up`) from the compose file and .env, which keep the key they
// were written with, so the key the rotator put in the environment would be lost and the retired key would come back.
// A key in a bind-mounted local.yaml survives those recreates, because compose keeps the mount.
func notComposeManaged(info ContainerInfo) error {
	project, service := info.Labels[composeProjectLabel], info.Labels[composeServiceLabel]
	if project == "" && service == "" {
		return nil
	}
	return fmt.Errorf("refusing mode env: the container belongs to docker compose project %q, service %q, and compose "+
		"recreates it from its compose file and .env, which keep the key they hold, so a rotated key would be lost "+
		"and the retired key would come back; use mode file: take QDRANT__SERVICE__*API_KEY out of the service's "+
		"environment and .env, put the key in a host local.yaml bind-mounted at /qdrant/config/local.yaml (compose "+
		"keeps the mount when it recreates the container; deploy/compose/ is a tested setup)", project, service)
}

// slotsFromEnv reads the key slots from an environment the way Qdrant does (names case-insensitive, later wins).
func slotsFromEnv(env []string) ConfigKeys {
	var k ConfigKeys
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case envAPIKey:
			k.APIKey = value
		case envAltAPIKey:
			k.AltAPIKey = value
		case envReadOnlyKey:
			k.ReadOnlyAPIKey = value
		case envJWTRBAC:
			k.JWTRBAC = truthy(value)
		}
	}
	return k
}

// withEnvKeys replaces the key slot variables in env (whatever their case) and leaves every other variable as it is.
func withEnvKeys(env []string, k ConfigKeys) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case envAPIKey, envAltAPIKey, envReadOnlyKey, envJWTRBAC:
			continue
		}
		out = append(out, kv)
	}
	jwtRBAC := ""
	if k.JWTRBAC {
		jwtRBAC = "true"
	}
	for _, v := range []struct{ name, value string }{{envAPIKey, k.APIKey}, {envAltAPIKey, k.AltAPIKey}, {envReadOnlyKey, k.ReadOnlyAPIKey}, {envJWTRBAC, jwtRBAC}} {
		if v.value != "" {
			out = append(out, v.name+"="+v.value)
		}
	}
	return out
}

func toSlots(k ConfigKeys) rotation.Slots {
	api, _ := rotation.ParseKey(k.APIKey)
	alt, _ := rotation.ParseKey(k.AltAPIKey)
	ro, _ := rotation.ParseKey(k.ReadOnlyAPIKey)
	return rotation.Slots{APIKey: api, AltAPIKey: alt, ReadOnlyKey: ro, JWTRBAC: k.JWTRBAC}
}
