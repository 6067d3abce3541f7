package qdrantctl

// This is the only product file that imports the Docker SDK (github.com/docker/docker/...): moving to
// github.com/moby/moby/client stays a change to this file alone. Everything else speaks in the plain types below.
// The Engine makes its calls through dockerAPI, the few SDK calls it uses; its tests put a client talking to
// recorded Engine answers behind it (docker_replay_test.go). The test bed's own Docker operations (building images,
// creating networks and containers) live in testbed/dockerbed.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/connhelper"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dockerAPI is the part of the Docker SDK client the Engine uses, and nothing more.
type dockerAPI interface {
	ContainerInspect(ctx context.Context, container string) (container.InspectResponse, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerLogs(ctx context.Context, container string, options container.LogsOptions) (io.ReadCloser, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, container string, options container.StartOptions) error
	ContainerStop(ctx context.Context, container string, options container.StopOptions) error
	ContainerRename(ctx context.Context, container, newContainerName string) error
	ContainerRemove(ctx context.Context, container string, options container.RemoveOptions) error
	NetworkConnect(ctx context.Context, network, container string, config *network.EndpointSettings) error
	ImageInspect(ctx context.Context, image string, options ...client.ImageInspectOption) (image.InspectResponse, error)
	Close() error
}

var _ dockerAPI = (*client.Client)(nil)

// Engine is a connection to one Docker Engine: the one the standard DOCKER_* environment names, or one an
// EngineAddress names.
type Engine struct {
	api dockerAPI
	// name is the engine's address as messages show it (scheme, host and port or socket; never user info).
	name string
	// named is set for an engine the config names (DialEngine with a Host): its nodes' messages name it.
	named bool
	// publishHost is the host a container's published ports are reached at: 127.0.0.1 for a local engine, the
	// engine's own host name or address for a tcp:// or ssh:// one (a remote engine publishes on its host).
	publishHost string
	// removals are old containers being removed in the background after a Recreate; Close waits for them.
	removals sync.WaitGroup
}

// EngineAddress says how to reach a Docker Engine, with the docker CLI's meaning of DOCKER_HOST, DOCKER_TLS_VERIFY
// and DOCKER_CERT_PATH. The zero value is the DOCKER_* environment itself; with Host set, the environment is not read.
type EngineAddress struct {
	// Host is unix:///path, tcp://host:port or ssh://[user@]host[:port][/socket-path].
	Host string
	// TLSVerify (tcp:// only) talks TLS, verifying the engine's certificate with CertPath/ca.pem and presenting
	// CertPath/cert.pem and CertPath/key.pem.
	TLSVerify bool
	// CertPath is the folder of ca.pem, cert.pem and key.pem (the config defaults it to ~/.docker, as the docker CLI).
	CertPath string
}

// String is the address as messages show it: the host without user info.
func (a EngineAddress) String() string {
	if a.Host == "" {
		return envHost()
	}
	return redactHost(a.Host)
}

// envHost is the engine the DOCKER_* environment names.
func envHost() string {
	if h := os.Getenv(client.EnvOverrideHost); h != "" {
		return redactHost(h)
	}
	return client.DefaultDockerHost
}

// redactHost drops the user info (user, password) of an engine URL.
func redactHost(host string) string {
	u, err := url.Parse(host)
	if err != nil || u.User == nil {
		return host
	}
	u.User = nil
	return u.String()
}

// publishHostOf is the host a tcp:// or ssh:// engine publishes container ports on (its own host name or
// address); 127.0.0.1 for a local engine.
func publishHostOf(host string) string {
	u, err := url.Parse(host)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "ssh") || u.Hostname() == "" {
		return "127.0.0.1"
	}
	return u.Hostname()
}

// NewEngine connects to the Docker Engine named by DOCKER_HOST (default: the local socket), negotiating the API
// version so that older engines work, and checks that it answers.
func NewEngine(ctx context.Context) (*Engine, error) { return DialEngine(ctx, EngineAddress{}) }

// DialEngine connects to the Docker Engine at addr (the zero address: the DOCKER_* environment) and checks that it
// answers. An ssh:// engine is reached the way the docker CLI reaches it: `ssh ... -- HOST docker system
// dial-stdio`, with the ssh client and its configuration (keys, known hosts) of the user running the rotator.
func DialEngine(ctx context.Context, addr EngineAddress) (*Engine, error) {
	host := addr.Host
	if host == "" {
		host = os.Getenv(client.EnvOverrideHost)
	}
	var opts []client.Opt
	switch {
	case strings.HasPrefix(host, "ssh://"): // the SDK alone does not reach ssh:// engines, from the environment either
		helper, err := connhelper.GetConnectionHelper(host)
		if err != nil {
			return nil, fmt.Errorf("docker engine %s: %w", addr, err)
		}
		opts = []client.Opt{client.WithHost(helper.Host), client.WithDialContext(helper.Dialer)}
	case addr.Host == "":
		opts = []client.Opt{client.FromEnv}
	case strings.HasPrefix(addr.Host, "unix://") || strings.HasPrefix(addr.Host, "tcp://"):
		opts = []client.Opt{client.WithHost(addr.Host)}
		if addr.TLSVerify {
			if !strings.HasPrefix(addr.Host, "tcp://") {
				return nil, fmt.Errorf("docker engine %s: tls_verify is for tcp:// engines", addr)
			}
			dir := addr.CertPath
			opts = append(opts, client.WithTLSClientConfig(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")))
		}
	default:
		return nil, fmt.Errorf("docker engine %s: want a unix://, tcp:// or ssh:// address", addr)
	}
	e, err := dial(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine %s: %w", addr, err)
	}
	e.name, e.named, e.publishHost = addr.String(), addr.Host != "", publishHostOf(host)
	return e, nil
}

// dial connects with the client's options given (a test points it at recorded answers).
func dial(ctx context.Context, opts ...client.Opt) (*Engine, error) {
	cli, err := client.NewClientWithOpts(append(opts, client.WithAPIVersionNegotiation())...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("does not answer: %w", err)
	}
	return &Engine{api: cli, name: "test", publishHost: "127.0.0.1"}, nil
}

// Name is the engine's address as messages show it (never user info or a credential).
func (e *Engine) Name() string { return e.name }

// PublishHost is the host at which the engine's containers' published ports are reached: 127.0.0.1 for a local
// engine, the engine's host for a tcp:// or ssh:// one.
func (e *Engine) PublishHost() string { return e.publishHost }

// Close waits for background removals and releases the connection.
func (e *Engine) Close() error {
	e.removals.Wait()
	return e.api.Close()
}

// start starts a created or stopped container.
func (e *Engine) start(ctx context.Context, id string) error {
	if err := e.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	return nil
}

// stop sends the container's stop signal (SIGTERM unless configured otherwise), kills it after the timeout, and
// checks that it has stopped.
func (e *Engine) stop(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(timeout.Seconds())
	if err := e.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	info, err := e.api.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("inspect container %s: %w", id, err)
	}
	if info.State == nil {
		return fmt.Errorf("inspect container %s: no state", id)
	}
	if info.State.Running {
		return fmt.Errorf("container %s is still running", id)
	}
	return nil
}

// remove force-removes a container, keeping its volumes; a container already gone is not an error.
func (e *Engine) remove(ctx context.Context, id string) error {
	err := e.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && strings.Contains(err.Error(), "is already in progress") {
		return e.awaitRemoved(ctx, id) // another process removes it: wait for that removal to finish
	}
	if err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// awaitRemoved waits until a container another caller is removing is gone.
func (e *Engine) awaitRemoved(ctx context.Context, id string) error {
	for {
		if _, err := e.api.ContainerInspect(ctx, id); client.IsErrNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove container %s: another removal did not finish: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// HostPort returns the port on which a container's TCP port is published at PublishHost: for a local engine, the
// port bound to 127.0.0.1; for a remote one, the port bound to the engine's host address or to every address.
func (e *Engine) HostPort(ctx context.Context, id string, containerPort int) (int, error) {
	info, err := e.api.ContainerInspect(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("inspect container %s: %w", id, err)
	}
	if info.NetworkSettings != nil {
		for _, b := range info.NetworkSettings.Ports[nat.Port(strconv.Itoa(containerPort)+"/tcp")] {
			if e.reaches(b.HostIP) {
				return strconv.Atoi(b.HostPort)
			}
		}
	}
	if e.publishHost == "127.0.0.1" {
		return 0, fmt.Errorf("container %s: port %d is not published on 127.0.0.1", id, containerPort)
	}
	return 0, fmt.Errorf("container %s: port %d is not published on %s or on every address of the engine's host", id, containerPort, e.publishHost)
}

// reaches says whether a port bound to hostIP is reached at PublishHost.
func (e *Engine) reaches(hostIP string) bool {
	if e.publishHost == "127.0.0.1" {
		return hostIP == "127.0.0.1"
	}
	return hostIP == e.publishHost || hostIP == "" || hostIP == "0.0.0.0" || hostIP == "::"
}

// LogTail returns the last lines a container wrote to stdout and stderr.
func (e *Engine) LogTail(ctx context.Context, id string, lines int) (string, error) {
	rc, err := e.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		return "", fmt.Errorf("logs of container %s: %w", id, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return out.String(), fmt.Errorf("logs of container %s: %w", id, err)
	}
	return out.String(), nil
}

// ContainerInfo is what the rotator needs to know of a container.
type ContainerInfo struct {
	ID      string
	Name    string
	Running bool
	// Env is the container's environment, image defaults included.
	Env    []string
	Mounts []MountInfo
	// User is the container's configured user (Config.User, image default included): "" (root), "1000",
	// "1000:1000", or names.
	User string
	// Labels are the container's labels, image labels included.
	Labels map[string]string
	// Ports are the container's TCP ports published on the host (as running, else as configured).
	Ports []PublishedPort
}

// PublishedPort is a container port published on a host address ("" or 0.0.0.0: every IPv4 address).
type PublishedPort struct {
	ContainerPort int
	HostIP        string
	HostPort      int
}

// MountInfo is one mount of a container.
type MountInfo struct {
	Type        string // "bind", "volume", ...
	Name        string // the volume's name (for volumes)
	Source      string // path on the host (for binds)
	Destination string // path in the container
}

// Inspect returns a container's info; a missing container is an error wrapping ErrNoContainer.
func (e *Engine) Inspect(ctx context.Context, name string) (ContainerInfo, error) {
	info, err := e.api.ContainerInspect(ctx, name)
	if client.IsErrNotFound(err) {
		return ContainerInfo{}, fmt.Errorf("container %s: %w", name, ErrNoContainer)
	}
	if err != nil {
		return ContainerInfo{}, fmt.Errorf("inspect container %s: %w", name, err)
	}
	ci := ContainerInfo{ID: info.ID, Name: strings.TrimPrefix(info.Name, "/"), Running: info.State != nil && info.State.Running}
	if info.Config != nil {
		ci.Env, ci.User = append([]string(nil), info.Config.Env...), info.Config.User
		ci.Labels = maps.Clone(info.Config.Labels)
	}
	for _, m := range info.Mounts {
		ci.Mounts = append(ci.Mounts, MountInfo{Type: string(m.Type), Name: m.Name, Source: m.Source, Destination: m.Destination})
	}
	ports := nat.PortMap(nil)
	if info.NetworkSettings != nil && len(info.NetworkSettings.Ports) > 0 {
		ports = info.NetworkSettings.Ports
	} else if info.HostConfig != nil {
		ports = info.HostConfig.PortBindings
	}
	for _, p := range slices.Sorted(maps.Keys(ports)) {
		if p.Proto() != "tcp" {
			continue
		}
		for _, b := range ports[p] {
			hp, _ := strconv.Atoi(b.HostPort)
			ci.Ports = append(ci.Ports, PublishedPort{ContainerPort: p.Int(), HostIP: b.HostIP, HostPort: hp})
		}
	}
	return ci, nil
}

// ErrNoContainer: no container has that name.
var ErrNoContainer = errors.New("no such container")

// Restart stops a container (its stop signal, then SIGKILL after timeout), checks that it stopped, and starts it.
func (e *Engine) Restart(ctx context.Context, name string, timeout time.Duration) error {
	if err := e.stop(ctx, name, timeout); err != nil {
		return err
	}
	return e.start(ctx, name)
}

// Names a Recreate gives the two containers while it swaps them, so a crash at any point loses nothing.
const (
	oldSuffix = "-rotator-old"
	newSuffix = "-rotator-new"
)

// Recreate replaces a container by an identical one whose environment is edited by change, following the recreate
// recipe (inspect container and image; keep only the user's settings, not the image defaults; keep the host config;
// rewrite container:<id> network modes to names; create on one network, connect the others with their endpoint
// settings; stop with the configured signal and check the result). The new container is created as NAME-rotator-new
// while the old one stops, then the old one becomes NAME-rotator-old, the new one NAME, and it is started: the
// rotator recreates a node to run it (a node that had exited is how a failed start is rolled back). A crash at any
// point leaves containers that RecoverRecreate puts straight.
func (e *Engine) Recreate(ctx context.Context, name string, change func(env []string) []string, timeout time.Duration) error {
	if err := e.RecoverRecreate(ctx, name); err != nil {
		return err
	}
	info, err := e.api.ContainerInspect(ctx, name)
	if err != nil {
		return fmt.Errorf("recreate container %s: %w", name, err)
	}
	img, err := e.api.ImageInspect(ctx, info.Image)
	if err != nil {
		return fmt.Errorf("recreate container %s: inspect image: %w", name, err)
	}
	if info.HostConfig != nil && info.HostConfig.AutoRemove {
		return fmt.Errorf("recreate container %s: it runs with --rm (auto-remove), so stopping it would delete it", name)
	}
	// The new container is created from the same image reference; refuse if that reference now names another image
	// (a re-pulled tag), which would upgrade Qdrant behind the operator's back.
	if now, err := e.api.ImageInspect(ctx, info.Config.Image); err != nil || now.ID != info.Image {
		return fmt.Errorf("recreate container %s: image %s no longer names the image the container runs (%s); recreating would change Qdrant's version", name, info.Config.Image, info.Image)
	}
	cfg := *info.Config
	if img.Config != nil {
		subtractImageDefaults(&cfg, img.Config)
	}
	if cfg.Hostname == info.ID[:12] {
		cfg.Hostname = "" // Docker's default, derived from the old id
	}
	cfg.Env = change(cfg.Env)
	host := info.HostConfig
	if mode := string(host.NetworkMode); strings.HasPrefix(mode, "container:") {
		other, err := e.api.ContainerInspect(ctx, strings.TrimPrefix(mode, "container:"))
		if err != nil {
			return fmt.Errorf("recreate container %s: network mode %s: %w", name, mode, err)
		}
		host.NetworkMode = container.NetworkMode("container:" + strings.TrimPrefix(other.Name, "/"))
	}
	// Endpoints: keep what the user set, drop what Docker derived at run time.
	endpoints := map[string]*network.EndpointSettings{}
	var netNames []string
	if info.NetworkSettings != nil {
		for netName, ep := range info.NetworkSettings.Networks {
			if ep == nil {
				continue
			}
			aliases := make([]string, 0, len(ep.Aliases))
			for _, a := range ep.Aliases {
				if a != info.ID[:12] {
					aliases = append(aliases, a)
				}
			}
			endpoints[netName] = &network.EndpointSettings{IPAMConfig: ep.IPAMConfig, Links: ep.Links, Aliases: aliases, DriverOpts: ep.DriverOpts}
			netNames = append(netNames, netName)
		}
	}
	sort.Strings(netNames)
	var netCfg *network.NetworkingConfig
	if !host.NetworkMode.IsContainer() && len(netNames) > 0 {
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netNames[0]: endpoints[netNames[0]]}}
	}

	// Create the new container while the old one drains.
	type result struct {
		id  string
		err error
	}
	created := make(chan result, 1)
	go func() {
		resp, err := e.api.ContainerCreate(ctx, &cfg, host, netCfg, nil, name+newSuffix)
		if err == nil && netCfg != nil {
			for _, n := range netNames[1:] {
				if err = e.api.NetworkConnect(ctx, n, resp.ID, endpoints[n]); err != nil {
					err = fmt.Errorf("connect network %s: %w", n, err)
					break
				}
			}
		}
		created <- result{resp.ID, err}
	}()
	wasRunning := info.State != nil && info.State.Running
	var stopErr error
	if wasRunning {
		stopErr = e.stop(ctx, info.ID, timeout)
	}
	res := <-created
	// From here on, a failure puts the old container back as it was (renamed back and started again if it ran),
	// with a context that a stop request does not cut short.
	bg := context.WithoutCancel(ctx)
	restore := func(cause error) error {
		if res.id != "" {
			_ = e.remove(bg, res.id)
		}
		_ = e.api.ContainerRename(bg, info.ID, name)
		if wasRunning {
			_ = e.start(bg, info.ID)
		}
		return fmt.Errorf("recreate container %s (the old one was put back): %w", name, cause)
	}
	if res.err != nil || stopErr != nil {
		return restore(errors.Join(res.err, stopErr))
	}
	if err := e.api.ContainerRename(bg, info.ID, name+oldSuffix); err != nil {
		return restore(fmt.Errorf("rename the old one: %w", err))
	}
	if err := e.api.ContainerRename(bg, res.id, name); err != nil {
		return restore(fmt.Errorf("rename the new one: %w", err))
	}
	if err := e.start(bg, res.id); err != nil {
		return fmt.Errorf("recreate container %s: %w", name, err)
	}
	// The old container is removed while the new one boots, keeping its volumes (named volumes carry over to the
	// new container; anonymous ones are refused for storage by the node); a removal that fails or is cut short
	// leaves NAME-rotator-old behind, which the next RecoverRecreate removes.
	e.removals.Add(1)
	go func() {
		defer e.removals.Done()
		rctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		_ = e.remove(rctx, info.ID)
	}()
	return nil
}

// RecoverRecreate puts straight what a crash left of a Recreate: a NAME-rotator-new that was never swapped in is
// removed; with NAME missing, NAME-rotator-old is renamed back; with NAME present, NAME-rotator-old goes (a rerun
// re-applies the wanted settings either way).
func (e *Engine) RecoverRecreate(ctx context.Context, name string) error {
	e.removals.Wait() // this engine's own removal of the last NAME-rotator-old, still under way
	if err := e.remove(ctx, name+newSuffix); err != nil {
		return fmt.Errorf("recover container %s: %w", name, err)
	}
	old, err := e.api.ContainerInspect(ctx, name+oldSuffix)
	if client.IsErrNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recover container %s: %w", name, err)
	}
	if _, err := e.api.ContainerInspect(ctx, name); client.IsErrNotFound(err) {
		if err := e.api.ContainerRename(ctx, old.ID, name); err != nil {
			return fmt.Errorf("recover container %s: rename back: %w", name, err)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("recover container %s: %w", name, err)
	}
	return e.remove(ctx, old.ID)
}

// subtractImageDefaults removes from cfg what it only inherited from the image, so the recreated container keeps
// following the image for those settings.
func subtractImageDefaults(cfg *container.Config, img *dockerspec.DockerOCIImageConfig) {
	if cfg.WorkingDir == img.WorkingDir {
		cfg.WorkingDir = ""
	}
	if cfg.User == img.User {
		cfg.User = ""
	}
	if slices.Equal(cfg.Cmd, img.Cmd) {
		cfg.Cmd = nil
	}
	if slices.Equal(cfg.Entrypoint, img.Entrypoint) {
		cfg.Entrypoint = nil
	}
	if cfg.StopSignal == img.StopSignal {
		cfg.StopSignal = ""
	}
	imageEnv := map[string]bool{}
	for _, kv := range img.Env {
		imageEnv[kv] = true
	}
	env := cfg.Env[:0:0]
	for _, kv := range cfg.Env {
		if !imageEnv[kv] {
			env = append(env, kv)
		}
	}
	cfg.Env = env
	for k, v := range img.Labels {
		if cfg.Labels[k] == v {
			delete(cfg.Labels, k)
		}
	}
	for p := range img.ExposedPorts {
		delete(cfg.ExposedPorts, nat.Port(p))
	}
	for v := range img.Volumes {
		delete(cfg.Volumes, v)
	}
}

// ContainersByLabel returns the names of the containers carrying a label ("key" or "key=value"), sorted, leaving
// out the previous containers a Recreate keeps for a moment.
func (e *Engine) ContainersByLabel(ctx context.Context, label string) ([]string, error) {
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return nil, fmt.Errorf("list containers with label %s: %w", label, err)
	}
	var names []string
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		if !strings.HasSuffix(name, oldSuffix) && !strings.HasSuffix(name, newSuffix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}
