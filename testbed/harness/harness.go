// Package harness runs Qdrant stand-in containers (or any Qdrant image) on the real Docker Engine for tests and the
// demo: it builds the stand-in image, creates a network per run, publishes each node's REST port on 127.0.0.1 only,
// and removes every container, network and volume it made. Everything it creates carries the label Label plus the
// creating process id, so a crashed run's leftovers are removed by the next run; so do the host folders it makes
// for bind-mounted files and storage (os.TempDir()/qdrant-testbed-<pid>-<run>).
package harness

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qdrantrotator/rotator/testbed/dockerbed"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

const (
	// Label marks every object the harness creates.
	Label = "io.qdrant-rotator.testbed"
	// ownerLabel holds the id of the process that created the object.
	ownerLabel = "io.qdrant-rotator.owner-pid"
	// RESTPort is the port Qdrant serves REST on inside its container.
	RESTPort = 6333
)

// RepoRoot returns the repository's root folder (the harness is compiled from source inside it).
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("harness: cannot locate the repository")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildStandinImage builds the stand-in's static binary and an image FROM scratch around it, laid out like Qdrant's
// (testbed/standin/image). The tag carries a hash of the binary and the image files, so an unchanged stand-in is
// built once and reused by every later run.
func BuildStandinImage(ctx context.Context, eng *dockerbed.Engine) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "standin-build-")
	if err != nil {
		return "", fmt.Errorf("build stand-in: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "qdrant-standin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testbed/cmd/qdrant-standin")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build stand-in binary: %w\n%s", err, out)
	}
	files := []dockerbed.File{}
	add := func(name, path string, mode int64) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("build stand-in image: %w", err)
		}
		files = append(files, dockerbed.File{Name: name, Mode: mode, Data: data})
		return nil
	}
	imageDir := filepath.Join(root, "testbed", "standin", "image")
	if err := add("Dockerfile", filepath.Join(imageDir, "Dockerfile"), 0o644); err != nil {
		return "", err
	}
	if err := add("qdrant-standin", bin, 0o755); err != nil {
		return "", err
	}
	configs, err := filepath.Glob(filepath.Join(imageDir, "config", "*.yaml"))
	if err != nil || len(configs) == 0 {
		return "", fmt.Errorf("build stand-in image: no config files in %s", imageDir)
	}
	for _, c := range configs {
		if err := add("config/"+filepath.Base(c), c, 0o644); err != nil {
			return "", err
		}
	}
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.Name))
		h.Write(f.Data)
	}
	tag := "qdrant-standin:" + hex.EncodeToString(h.Sum(nil))[:12]
	if ok, err := eng.ImageExists(ctx, tag); err != nil || ok {
		return tag, err
	}
	if err := eng.BuildImage(ctx, tag, map[string]string{Label: "image"}, files); err != nil {
		return "", err
	}
	return tag, nil
}

// Harness owns the Docker objects of one test (or one demo run).
type Harness struct {
	// Engine is the product's Engine (Inspect, Restart, HostPort, ...) with the test bed's operations.
	Engine  *dockerbed.Engine
	run     string
	netName string

	mu       sync.Mutex
	seq      int
	hostDir  string   // made on first use by hostFolder, removed by Close
	networks []string // ids of the run's networks, removed by Close
}

// New connects to the Docker Engine, removes leftovers of crashed earlier runs, and creates a network for this run.
func New(ctx context.Context) (*Harness, error) { return NewAt(ctx, "") }

// NewAt is New on the Docker Engine at a unix:// host (a test's second engine; "" is the DOCKER_* environment's).
func NewAt(ctx context.Context, host string) (*Harness, error) {
	eng, err := dockerbed.NewAt(ctx, host)
	if err != nil {
		return nil, err
	}
	if err := Sweep(ctx, eng, false); err != nil {
		eng.Close()
		return nil, err
	}
	run := randomID()
	h := &Harness{Engine: eng, run: run, netName: "qdrant-testbed-" + run}
	if _, err := h.CreateNetwork(ctx, h.netName); err != nil {
		eng.Close()
		return nil, err
	}
	return h, nil
}

// CreateNetwork creates a bridge network labelled as the run's (New makes the run's own; a test may add others)
// and returns its id; Close removes it.
func (h *Harness) CreateNetwork(ctx context.Context, name string) (string, error) {
	id, err := h.Engine.CreateNetwork(ctx, name, h.labels())
	if err != nil {
		return "", err
	}
	h.mu.Lock()
	h.networks = append(h.networks, id)
	h.mu.Unlock()
	return id, nil
}

// Network is the name of the run's Docker network.
func (h *Harness) Network() string { return h.netName }

func (h *Harness) labels() map[string]string {
	return map[string]string{Label: h.run, ownerLabel: strconv.Itoa(os.Getpid())}
}

// Sweep removes objects carrying Label. With all=false it removes only those whose creating process is gone (a
// crashed run); with all=true everything (make demo-down, make clean-testbed).
func Sweep(ctx context.Context, eng *dockerbed.Engine, all bool) error {
	stale := func(l dockerbed.Labelled) bool {
		if all {
			return true
		}
		pid, err := strconv.Atoi(l.Labels[ownerLabel])
		if err != nil {
			return false // not ours to judge (e.g. the image label)
		}
		return !processAlive(pid)
	}
	var errs []error
	containers, err := eng.Containers(ctx, Label)
	errs = append(errs, err)
	for _, c := range containers {
		if stale(c) {
			errs = append(errs, eng.RemoveContainer(ctx, c.ID))
		}
	}
	networks, err := eng.Networks(ctx, Label)
	errs = append(errs, err)
	for _, n := range networks {
		if stale(n) {
			errs = append(errs, eng.RemoveNetwork(ctx, n.ID))
		}
	}
	volumes, err := eng.Volumes(ctx, Label)
	errs = append(errs, err)
	for _, v := range volumes {
		if stale(v) {
			errs = append(errs, eng.RemoveVolume(ctx, v.ID))
		}
	}
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), hostDirPrefix+"*"))
	errs = append(errs, err)
	for _, d := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), hostDirPrefix), "-")
		if pid, err := strconv.Atoi(pidText); err == nil && (all || !processAlive(pid)) {
			errs = append(errs, os.RemoveAll(d))
		}
	}
	return errors.Join(errs...)
}

// hostDirPrefix starts the name of a run's host folder, followed by "<pid>-<run>".
const hostDirPrefix = "qdrant-testbed-"

// hostFolder returns a new folder for one node under the run's host folder, creating both as needed. Every level
// is mode 0755 so that a container user other than root can reach what is mounted from it.
func (h *Harness) hostFolder(node string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hostDir == "" {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-%s", hostDirPrefix, os.Getpid(), h.run))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", fmt.Errorf("create host folder of run %s: %w", h.run, err)
		}
		if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
			return "", fmt.Errorf("create host folder of run %s: %w", h.run, err)
		}
		h.hostDir = dir
	}
	dir := filepath.Join(h.hostDir, node)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("create host folder of node %s: %w", node, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("create host folder of node %s: %w", node, err)
	}
	return dir, nil
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Close removes every container and the networks of this run (found by the run's label, so containers a rotation
// recreated under new ids go too), and closes the Engine connection.
func (h *Harness) Close(ctx context.Context) error {
	containers, err := h.Engine.Containers(ctx, Label+"="+h.run)
	errs := []error{err}
	for _, c := range containers {
		errs = append(errs, h.Engine.RemoveContainer(ctx, c.ID))
	}
	h.mu.Lock()
	for _, id := range h.networks {
		errs = append(errs, h.Engine.RemoveNetwork(ctx, id))
	}
	h.networks = nil
	h.mu.Unlock()
	errs = append(errs, h.Engine.Close())
	h.mu.Lock()
	if h.hostDir != "" {
		errs = append(errs, os.RemoveAll(h.hostDir))
		h.hostDir = ""
	}
	h.mu.Unlock()
	return errors.Join(errs...)
}

// NodeSpec describes one node container.
type NodeSpec struct {
	// Name is the container name and its DNS alias on the run's network; empty picks "qdrant-<run>-<n>".
	Name  string
	Image string
	Env   []string
	Args  []string
	// Files are copied under /qdrant before the first start (e.g. "config/local.yaml"), owned by root with mode
	// 0600: a User other than root cannot read them (use HostFiles).
	Files map[string]string
	// Binds are bind mounts ("host:container[:options]").
	Binds []string
	// HostFiles are written on the host, with the owner and mode given, and bind-mounted one by one at
	// /qdrant/<name> (e.g. "config/local.yaml"), the way file-mode deployments mount local.yaml.
	HostFiles map[string]HostFile
	// User is the container's user, "uid" or "uid:gid" (docker run --user; the group is 0 when omitted, as for any
	// uid the image does not name). Empty keeps the image's user: root, in the stand-in image as in Qdrant's
	// default one, whose /qdrant (and so the storage folder the node creates) belongs to root. So with a user
	// other than root and nothing in Binds at /qdrant/storage, the harness bind-mounts a storage folder it creates
	// on the host and gives to that user and group. (A new named volume there would belong to root: the stand-in
	// image has no /qdrant/storage whose owner Docker could copy.)
	User string
	// Scheme is "http" (default) or "https".
	Scheme string
	// RESTHostPort fixes the 127.0.0.1 port REST is published on (0: the engine picks one, which may move when the
	// container restarts). A proxy in front of the nodes needs it fixed.
	RESTHostPort int
}

// HostFile is a file of NodeSpec.HostFiles.
type HostFile struct {
	Content string
	// UID and GID own the file (0 is root; changing the owner needs the test to run as root).
	UID, GID int
	// Mode is the file's permission bits, exactly (0 is 0000).
	Mode os.FileMode
}

// storagePath is where Qdrant keeps its data in its image (storage.storage_path ./storage under /qdrant).
const storagePath = "/qdrant/storage"

// Node is one container of the run.
type Node struct {
	ID   string
	Name string
	// URL is the node's REST address on 127.0.0.1, valid while it runs (the host port may change on restart).
	URL string

	h      *Harness
	scheme string
	// hostFiles maps a HostFiles name to its path on the host.
	hostFiles map[string]string
}

// Create creates a node container without starting it.
func (h *Harness) Create(ctx context.Context, spec NodeSpec) (*Node, error) {
	name := spec.Name
	if name == "" {
		h.mu.Lock()
		h.seq++
		name = fmt.Sprintf("qdrant-%s-%d", h.run, h.seq)
		h.mu.Unlock()
	}
	binds, hostFiles, err := h.hostMounts(name, spec)
	if err != nil {
		return nil, err
	}
	id, err := h.Engine.CreateContainer(ctx, dockerbed.ContainerSpec{
		Name: name, Image: spec.Image, Env: spec.Env, Cmd: spec.Args, Labels: h.labels(), User: spec.User,
		Network: h.netName, Aliases: []string{name}, Publish: []int{RESTPort}, HostPorts: map[int]int{RESTPort: spec.RESTHostPort}, Binds: binds,
	})
	if err != nil {
		return nil, err
	}
	n := &Node{ID: id, Name: name, h: h, scheme: spec.Scheme, hostFiles: hostFiles}
	if n.scheme == "" {
		n.scheme = "http"
	}
	if len(spec.Files) > 0 {
		if err := h.Engine.CopyFiles(ctx, id, "/qdrant", spec.Files); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// hostMounts writes the spec's HostFiles and, for a user other than root without a storage mount, a storage
// folder owned by that user, under a host folder of the node; it returns the spec's Binds plus theirs, and where
// each host file is.
func (h *Harness) hostMounts(node string, spec NodeSpec) ([]string, map[string]string, error) {
	binds := append([]string(nil), spec.Binds...)
	uid, gid, err := parseUser(spec.User)
	if err != nil {
		return nil, nil, err
	}
	needStorage := uid != 0 && !bindsTarget(spec.Binds, storagePath)
	if len(spec.HostFiles) == 0 && !needStorage {
		return binds, nil, nil
	}
	dir, err := h.hostFolder(node)
	if err != nil {
		return nil, nil, err
	}
	paths := map[string]string{}
	for name, f := range spec.HostFiles {
		if !filepath.IsLocal(name) {
			return nil, nil, fmt.Errorf("host file %q of node %s: the name must stay inside /qdrant", name, node)
		}
		p := filepath.Join(dir, "files", name)
		if err := writeHostFile(p, f); err != nil {
			return nil, nil, fmt.Errorf("host file %s of node %s: %w", name, node, err)
		}
		paths[filepath.Clean(name)] = p
		binds = append(binds, p+":/qdrant/"+filepath.ToSlash(name))
	}
	if needStorage {
		p := filepath.Join(dir, "storage")
		if err := os.Mkdir(p, 0o755); err != nil {
			return nil, nil, fmt.Errorf("storage folder of node %s: %w", node, err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, nil, fmt.Errorf("storage folder of node %s for user %s: %w", node, spec.User, err)
		}
		binds = append(binds, p+":"+storagePath)
	}
	return binds, paths, nil
}

// writeHostFile creates (or replaces the content of) a file with the owner and mode asked for; its folders are
// made 0755, so that any user can reach it.
func writeHostFile(p string, f HostFile) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(f.Content), 0o600); err != nil {
		return err
	}
	if err := os.Chown(p, f.UID, f.GID); err != nil {
		return err
	}
	return os.Chmod(p, f.Mode)
}

// bindsTarget reports whether one of the "host:container[:options]" binds mounts something at target.
func bindsTarget(binds []string, target string) bool {
	for _, b := range binds {
		parts := strings.Split(b, ":")
		if len(parts) >= 2 && filepath.Clean(parts[1]) == target {
			return true
		}
	}
	return false
}

// parseUser reads a Docker user of the form "uid" or "uid:gid" (numeric only: the stand-in image has no
// /etc/passwd); the group is 0 when omitted, and "" is root (0, 0).
func parseUser(user string) (uid, gid int, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if uid, err = strconv.Atoi(u); err != nil || uid < 0 {
		return 0, 0, fmt.Errorf("user %q: want uid or uid:gid, numeric", user)
	}
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("user %q: want uid or uid:gid, numeric", user)
		}
	}
	return uid, gid, nil
}

// StartNode creates a node, starts it and waits until its REST port answers.
func (h *Harness) StartNode(ctx context.Context, spec NodeSpec) (*Node, error) {
	n, err := h.Create(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// Start starts the container and waits (up to 30 s) until GET / answers on its published port.
func (n *Node) Start(ctx context.Context) error {
	if err := n.h.Engine.StartContainer(ctx, n.ID); err != nil {
		return err
	}
	port, err := n.h.Engine.HostPort(ctx, n.ID, RESTPort)
	if err != nil {
		return err
	}
	n.URL = fmt.Sprintf("%s://127.0.0.1:%d", n.scheme, port)
	return n.WaitAnswering(ctx, 30*time.Second)
}

// WaitAnswering polls GET / (auth-exempt) until the node answers with any HTTP status, or the bound passes, or the
// container exits.
func (n *Node) WaitAnswering(ctx context.Context, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	client := probeClient()
	return wait.For(ctx, "node "+n.Name+" to answer on "+n.URL, bound, wait.Interval, func() (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return true, nil
		}
		if info, ierr := n.h.Engine.Inspect(ctx, n.ID); ierr == nil && !info.Running {
			logs, _ := n.Logs(context.Background())
			return false, wait.Abort(fmt.Errorf("node %s exited before answering:\n%s", n.Name, logs))
		}
		return false, err
	})
}

// URLOf returns the REST URL of a container by name, looking up its published port now (a recreated container gets
// a new one).
func (h *Harness) URLOf(ctx context.Context, name, scheme string) (string, error) {
	info, err := h.Engine.Inspect(ctx, name)
	if err != nil {
		return "", err
	}
	port, err := h.Engine.HostPort(ctx, info.ID, RESTPort)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, port), nil
}

// Stop stops the node with SIGTERM (graceful) or SIGKILL and returns its exit code.
func (n *Node) Stop(ctx context.Context, graceful bool) (int, error) {
	if graceful {
		return n.h.Engine.StopContainer(ctx, n.ID, 30*time.Second)
	}
	return n.h.Engine.KillContainer(ctx, n.ID, "SIGKILL")
}

// Logs returns the node's output.
func (n *Node) Logs(ctx context.Context) (string, error) { return n.h.Engine.Logs(ctx, n.ID) }

// WriteFiles copies files under /qdrant of the node's container (running or not). A file of the spec's HostFiles
// is rewritten in place on the host instead (same inode, owner and mode), which is what its bind mount shows.
func (n *Node) WriteFiles(ctx context.Context, files map[string]string) error {
	rest := map[string]string{}
	for name, content := range files {
		p, ok := n.hostFiles[filepath.Clean(name)]
		if !ok {
			rest[name] = content
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return fmt.Errorf("rewrite host file %s of node %s: %w", name, n.Name, err)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return n.h.Engine.CopyFiles(ctx, n.ID, "/qdrant", rest)
}

// HostPath returns where a file of the spec's HostFiles is on the host.
func (n *Node) HostPath(name string) (string, bool) {
	p, ok := n.hostFiles[filepath.Clean(name)]
	return p, ok
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
