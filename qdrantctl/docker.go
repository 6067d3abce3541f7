package qdrantctl

// This is the only file that imports the Docker SDK (github.com/docker/docker/...): moving to
// github.com/moby/moby/client later stays a change to this file alone. Everything else speaks in the
// plain types below.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// Engine is a connection to a Docker Engine, configured from the standard DOCKER_* environment.
type Engine struct {
	cli *client.Client
	// removals are old containers being removed in the background after a Recreate; Close waits for them.
	removals sync.WaitGroup
}

// NewEngine connects to the Docker Engine named by DOCKER_HOST (default: the local socket), negotiating the API
// version so that older engines work, and checks that it answers.
func NewEngine(ctx context.Context) (*Engine, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker engine does not answer: %w", err)
	}
	return &Engine{cli: cli}, nil
}

// Close waits for background removals and releases the connection.
func (e *Engine) Close() error {
	e.removals.Wait()
	return e.cli.Close()
}

// File is one file of an image build context.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// BuildImage builds an image from an in-memory context holding a Dockerfile and the files it copies
// (used by the test bed and the demo to build the Qdrant stand-in; no registry is involved).
func (e *Engine) BuildImage(ctx context.Context, tag string, labels map[string]string, files []File) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: time.Unix(0, 0)}); err != nil {
			return fmt.Errorf("build image %s: %w", tag, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("build image %s: %w", tag, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	resp, err := e.cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{tag}, Labels: labels, Remove: true, ForceRemove: true})
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer resp.Body.Close()
	// The build streams JSON messages; an error arrives as a message, not as an HTTP status.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("build image %s: read progress: %w", tag, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build image %s: %s", tag, msg.Error)
		}
	}
}

// ImageExists says whether the engine has an image with that reference.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.cli.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return true, nil
}

// CreateNetwork creates a bridge network and returns its id.
func (e *Engine) CreateNetwork(ctx context.Context, name string, labels map[string]string) (string, error) {
	resp, err := e.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		return "", fmt.Errorf("create network %s: %w", name, err)
	}
	return resp.ID, nil
}

// RemoveNetwork removes a network; a network that is already gone is not an error.
func (e *Engine) RemoveNetwork(ctx context.Context, id string) error {
	if err := e.cli.NetworkRemove(ctx, id); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("remove network %s: %w", id, err)
	}
	return nil
}

// ContainerSpec describes a container to create.
type ContainerSpec struct {
	Name    string
	Image   string
	Env     []string // KEY=value
	Cmd     []string
	Labels  map[string]string
	Network string   // network name or id to attach to
	Aliases []string // DNS names on that network
	// Publish lists container TCP ports to publish on 127.0.0.1, each on a port the engine picks.
	Publish []int
	// Binds are bind mounts in Docker's "host:container[:options]" form.
	Binds []string
	// User is the user the container runs as ("uid" or "uid:gid"); empty keeps the image's.
	User string
}

// CreateContainer creates (but does not start) a container and returns its id.
func (e *Engine) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for _, p := range spec.Publish {
		port := nat.Port(strconv.Itoa(p) + "/tcp")
		exposed[port] = struct{}{}
		bindings[port] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: "0"}}
	}
	cfg := &container.Config{Image: spec.Image, Env: spec.Env, Cmd: spec.Cmd, Labels: spec.Labels, ExposedPorts: exposed, User: spec.User}
	host := &container.HostConfig{PortBindings: bindings, Binds: spec.Binds}
	var netCfg *network.NetworkingConfig
	if spec.Network != "" {
		host.NetworkMode = container.NetworkMode(spec.Network)
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			spec.Network: {Aliases: spec.Aliases},
		}}
	}
	resp, err := e.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, spec.Name)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	return resp.ID, nil
}

// StartContainer starts a created or stopped container.
func (e *Engine) StartContainer(ctx context.Context, id string) error {
	if err := e.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	return nil
}

// StopContainer sends the container's stop signal (SIGTERM unless configured otherwise), kills it after the
// timeout, and returns its exit code once it has stopped.
func (e *Engine) StopContainer(ctx context.Context, id string, timeout time.Duration) (int, error) {
	secs := int(timeout.Seconds())
	if err := e.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil {
		return 0, fmt.Errorf("stop container %s: %w", id, err)
	}
	return e.exitCode(ctx, id)
}

// KillContainer sends a signal (for example "SIGKILL") and waits until the container has stopped.
func (e *Engine) KillContainer(ctx context.Context, id, signal string) (int, error) {
	waitC, errC := e.cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	if err := e.cli.ContainerKill(ctx, id, signal); err != nil {
		return 0, fmt.Errorf("kill container %s: %w", id, err)
	}
	return awaitExit(id, waitC, errC)
}

// WaitExit waits until the container is not running and returns its exit code.
func (e *Engine) WaitExit(ctx context.Context, id string) (int, error) {
	waitC, errC := e.cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	return awaitExit(id, waitC, errC)
}

func awaitExit(id string, waitC <-chan container.WaitResponse, errC <-chan error) (int, error) {
	select {
	case res := <-waitC:
		if res.Error != nil {
			return 0, fmt.Errorf("wait container %s: %s", id, res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-errC:
		return 0, fmt.Errorf("wait container %s: %w", id, err)
	}
}

func (e *Engine) exitCode(ctx context.Context, id string) (int, error) {
	info, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("inspect container %s: %w", id, err)
	}
	if info.State == nil {
		return 0, fmt.Errorf("inspect container %s: no state", id)
	}
	if info.State.Running {
		return 0, fmt.Errorf("container %s is still running", id)
	}
	return info.State.ExitCode, nil
}

// Running says whether the container is running.
func (e *Engine) Running(ctx context.Context, id string) (bool, error) {
	info, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return false, fmt.Errorf("inspect container %s: %w", id, err)
	}
	return info.State != nil && info.State.Running, nil
}

// RemoveContainer force-removes a container and its anonymous volumes (the test bed's clean-up); a container
// already gone is not an error.
func (e *Engine) RemoveContainer(ctx context.Context, id string) error {
	return e.remove(ctx, id, true)
}

// remove force-removes a container, with or without its anonymous volumes.
func (e *Engine) remove(ctx context.Context, id string, volumes bool) error {
	err := e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: volumes})
	if err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// HostPort returns the 127.0.0.1 port on which a container's TCP port is published.
func (e *Engine) HostPort(ctx context.Context, id string, containerPort int) (int, error) {
	info, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("inspect container %s: %w", id, err)
	}
	if info.NetworkSettings != nil {
		for _, b := range info.NetworkSettings.Ports[nat.Port(strconv.Itoa(containerPort)+"/tcp")] {
			if b.HostIP == "127.0.0.1" {
				return strconv.Atoi(b.HostPort)
			}
		}
	}
	return 0, fmt.Errorf("container %s: port %d is not published on 127.0.0.1", id, containerPort)
}

// CopyFiles writes files (relative name -> content, mode 0600) into a directory of a container.
func (e *Engine) CopyFiles(ctx context.Context, id, dir string, files map[string]string) error {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		data := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
			return fmt.Errorf("copy files into %s: %w", id, err)
		}
		if _, err := io.WriteString(tw, data); err != nil {
			return fmt.Errorf("copy files into %s: %w", id, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("copy files into %s: %w", id, err)
	}
	if err := e.cli.CopyToContainer(ctx, id, dir, &buf, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy files into %s:%s: %w", id, dir, err)
	}
	return nil
}

// Logs returns what the container wrote to stdout and stderr.
func (e *Engine) Logs(ctx context.Context, id string) (string, error) { return e.logs(ctx, id, "all") }

// LogTail returns the last lines a container wrote to stdout and stderr.
func (e *Engine) LogTail(ctx context.Context, id string, lines int) (string, error) {
	return e.logs(ctx, id, strconv.Itoa(lines))
}

func (e *Engine) logs(ctx context.Context, id, tail string) (string, error) {
	rc, err := e.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: tail})
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

// Labelled is a container, network or volume found by label.
type Labelled struct {
	ID     string
	Name   string
	Labels map[string]string
}

// Containers lists all containers (running or not) carrying a label ("key" or "key=value").
func (e *Engine) Containers(ctx context.Context, label string) ([]Labelled, error) {
	list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return nil, fmt.Errorf("list containers with label %s: %w", label, err)
	}
	out := make([]Labelled, 0, len(list))
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = c.Names[0]
		}
		out = append(out, Labelled{ID: c.ID, Name: name, Labels: c.Labels})
	}
	return out, nil
}

// Networks lists the networks carrying a label.
func (e *Engine) Networks(ctx context.Context, label string) ([]Labelled, error) {
	list, err := e.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return nil, fmt.Errorf("list networks with label %s: %w", label, err)
	}
	out := make([]Labelled, 0, len(list))
	for _, n := range list {
		out = append(out, Labelled{ID: n.ID, Name: n.Name, Labels: n.Labels})
	}
	return out, nil
}

// Volumes lists the volumes carrying a label.
func (e *Engine) Volumes(ctx context.Context, label string) ([]Labelled, error) {
	list, err := e.cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return nil, fmt.Errorf("list volumes with label %s: %w", label, err)
	}
	out := make([]Labelled, 0, len(list.Volumes))
	for _, v := range list.Volumes {
		out = append(out, Labelled{ID: v.Name, Name: v.Name, Labels: v.Labels})
	}
	return out, nil
}

// RemoveVolume removes a volume; a volume already gone is not an error.
func (e *Engine) RemoveVolume(ctx context.Context, name string) error {
	if err := e.cli.VolumeRemove(ctx, name, true); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
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
	info, err := e.cli.ContainerInspect(ctx, name)
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
	return ci, nil
}

// ErrNoContainer: no container has that name.
var ErrNoContainer = errors.New("no such container")

// Restart stops a container (its stop signal, then SIGKILL after timeout), checks that it stopped, and starts it.
func (e *Engine) Restart(ctx context.Context, name string, timeout time.Duration) error {
	if _, err := e.StopContainer(ctx, name, timeout); err != nil {
		return err
	}
	return e.StartContainer(ctx, name)
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
	info, err := e.cli.ContainerInspect(ctx, name)
	if err != nil {
		return fmt.Errorf("recreate container %s: %w", name, err)
	}
	img, err := e.cli.ImageInspect(ctx, info.Image)
	if err != nil {
		return fmt.Errorf("recreate container %s: inspect image: %w", name, err)
	}
	if info.HostConfig != nil && info.HostConfig.AutoRemove {
		return fmt.Errorf("recreate container %s: it runs with --rm (auto-remove), so stopping it would delete it", name)
	}
	// The new container is created from the same image reference; refuse if that reference now names another image
	// (a re-pulled tag), which would upgrade Qdrant behind the operator's back.
	if now, err := e.cli.ImageInspect(ctx, info.Config.Image); err != nil || now.ID != info.Image {
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
		other, err := e.cli.ContainerInspect(ctx, strings.TrimPrefix(mode, "container:"))
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
		resp, err := e.cli.ContainerCreate(ctx, &cfg, host, netCfg, nil, name+newSuffix)
		if err == nil && netCfg != nil {
			for _, n := range netNames[1:] {
				if err = e.cli.NetworkConnect(ctx, n, resp.ID, endpoints[n]); err != nil {
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
		_, stopErr = e.StopContainer(ctx, info.ID, timeout)
	}
	res := <-created
	// From here on, a failure puts the old container back as it was (renamed back and started again if it ran),
	// with a context that a stop request does not cut short.
	bg := context.WithoutCancel(ctx)
	restore := func(cause error) error {
		if res.id != "" {
			_ = e.remove(bg, res.id, false)
		}
		_ = e.cli.ContainerRename(bg, info.ID, name)
		if wasRunning {
			_ = e.StartContainer(bg, info.ID)
		}
		return fmt.Errorf("recreate container %s (the old one was put back): %w", name, cause)
	}
	if res.err != nil || stopErr != nil {
		return restore(errors.Join(res.err, stopErr))
	}
	if err := e.cli.ContainerRename(bg, info.ID, name+oldSuffix); err != nil {
		return restore(fmt.Errorf("rename the old one: %w", err))
	}
	if err := e.cli.ContainerRename(bg, res.id, name); err != nil {
		return restore(fmt.Errorf("rename the new one: %w", err))
	}
	if err := e.StartContainer(bg, res.id); err != nil {
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
		_ = e.remove(rctx, info.ID, false)
	}()
	return nil
}

// RecoverRecreate puts straight what a crash left of a Recreate: a NAME-rotator-new that was never swapped in is
// removed; with NAME missing, NAME-rotator-old is renamed back; with NAME present, NAME-rotator-old goes (a rerun
// re-applies the wanted settings either way).
func (e *Engine) RecoverRecreate(ctx context.Context, name string) error {
	if err := e.remove(ctx, name+newSuffix, false); err != nil {
		return fmt.Errorf("recover container %s: %w", name, err)
	}
	old, err := e.cli.ContainerInspect(ctx, name+oldSuffix)
	if client.IsErrNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recover container %s: %w", name, err)
	}
	if _, err := e.cli.ContainerInspect(ctx, name); client.IsErrNotFound(err) {
		if err := e.cli.ContainerRename(ctx, old.ID, name); err != nil {
			return fmt.Errorf("recover container %s: rename back: %w", name, err)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("recover container %s: %w", name, err)
	}
	return e.remove(ctx, old.ID, false)
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
	list, err := e.Containers(ctx, label)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range list {
		name := strings.TrimPrefix(c.Name, "/")
		if !strings.HasSuffix(name, oldSuffix) && !strings.HasSuffix(name, newSuffix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}
