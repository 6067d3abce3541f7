// Package dockerbed is the test bed's side of the Docker Engine: it builds images, creates networks, containers
// and their files, stops, kills and waits for containers, and lists and removes what carries a label. It is test
// infrastructure (testbed/harness, testbed/cmd/testbed and the tests use it); the product's Engine, which the rotator
// drives (Inspect, Restart, Recreate, HostPort, LogTail, ...), is qdrantctl.Engine, embedded here so a test reaches
// both through one value.
package dockerbed

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	networktypes "github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/qdrantrotator/rotator/qdrantctl"
)

// Engine is the product's Engine plus the test bed's own operations, on a second connection to the same Docker
// Engine (configured from the standard DOCKER_* environment).
type Engine struct {
	*qdrantctl.Engine
	cli *client.Client
}

// New connects to the Docker Engine named by DOCKER_HOST (default: the local socket) and checks that it answers.
func New(ctx context.Context) (*Engine, error) { return NewAt(ctx, "") }

// NewAt connects to the Docker Engine at a unix:// or plain tcp:// host (a test's second engine; "" is New).
func NewAt(ctx context.Context, host string) (*Engine, error) {
	eng, err := qdrantctl.DialEngine(ctx, qdrantctl.EngineAddress{Host: host})
	if err != nil {
		return nil, err
	}
	opt := client.FromEnv
	if host != "" {
		opt = client.WithHost(host)
	}
	cli, err := client.NewClientWithOpts(opt, client.WithAPIVersionNegotiation())
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Engine{Engine: eng, cli: cli}, nil
}

// Close closes both connections (the product Engine's first, which waits for its background removals).
func (e *Engine) Close() error {
	return errors.Join(e.Engine.Close(), e.cli.Close())
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
	resp, err := e.cli.NetworkCreate(ctx, name, networktypes.CreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		return "", fmt.Errorf("create network %s: %w", name, err)
	}
	return resp.ID, nil
}

// ConnectNetwork attaches a container to another network, with DNS aliases there.
func (e *Engine) ConnectNetwork(ctx context.Context, network, id string, aliases []string) error {
	if err := e.cli.NetworkConnect(ctx, network, id, &networktypes.EndpointSettings{Aliases: aliases}); err != nil {
		return fmt.Errorf("connect container %s to network %s: %w", id, network, err)
	}
	return nil
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
	// Publish lists container TCP ports to publish on 127.0.0.1, each on a port the engine picks unless HostPorts
	// fixes it.
	Publish []int
	// HostPorts fixes the 127.0.0.1 port of a published container port (it then stays across restarts and
	// recreates, where a port the engine picks may move).
	HostPorts map[int]int
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
		bindings[port] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: strconv.Itoa(spec.HostPorts[p])}}
	}
	cfg := &container.Config{Image: spec.Image, Env: spec.Env, Cmd: spec.Cmd, Labels: spec.Labels, ExposedPorts: exposed, User: spec.User}
	host := &container.HostConfig{PortBindings: bindings, Binds: spec.Binds}
	var netCfg *networktypes.NetworkingConfig
	if spec.Network != "" {
		host.NetworkMode = container.NetworkMode(spec.Network)
		netCfg = &networktypes.NetworkingConfig{EndpointsConfig: map[string]*networktypes.EndpointSettings{
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

// RemoveContainer force-removes a container and its anonymous volumes (the test bed's clean-up); a container
// already gone is not an error.
func (e *Engine) RemoveContainer(ctx context.Context, id string) error {
	err := e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
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

// Logs returns all that the container wrote to stdout and stderr: the product Engine's LogTail, with more lines
// than any test's node writes.
func (e *Engine) Logs(ctx context.Context, id string) (string, error) {
	return e.Engine.LogTail(ctx, id, math.MaxInt32)
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
	list, err := e.cli.NetworkList(ctx, networktypes.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
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
