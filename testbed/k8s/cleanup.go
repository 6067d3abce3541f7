package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qdrantrotator/rotator/testbed/wait"
)

// acquireLock takes the machine's exclusive cluster lock, waiting while another cluster holds it.
func acquireLock(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kubernetes cluster lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("kubernetes cluster lock %s: %w", LockPath, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for the kubernetes cluster lock %s (another cluster runs): %w", LockPath, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func releaseLock(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}

// recordDir writes the cluster's folder into the lock file, for the next Start to clean up after a crash.
func recordDir(f *os.File, dir string) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("kubernetes cluster lock: %w", err)
	}
	if _, err := f.WriteAt([]byte(dir+"\n"), 0); err != nil {
		return fmt.Errorf("kubernetes cluster lock: %w", err)
	}
	return nil
}

func clearRecord(f *os.File) { _ = f.Truncate(0) }

// sweepStale removes what a cluster that ended without Stop (a killed test) left behind: its folder is still
// named in the lock file.
func sweepStale(lock *os.File) error {
	b := make([]byte, 4096)
	n, _ := lock.ReadAt(b, 0)
	dir := strings.TrimSpace(string(b[:n]))
	if dir == "" {
		return nil
	}
	var err error
	if filepath.Dir(dir) == filepath.Clean(os.TempDir()) && strings.HasPrefix(filepath.Base(dir), dirPrefix) {
		err = cleanHost(dir)
	}
	clearRecord(lock)
	if err != nil {
		return fmt.Errorf("remove the leftovers of an earlier kubernetes cluster in %s: %w", dir, err)
	}
	return nil
}

// deleteWorkloads deletes the controllers and pods of every namespace (pods with a short grace period, so the
// kubelet stops their containers and sandboxes and tears down their network), and waits until no pod is left.
func (c *Cluster) deleteWorkloads(ctx context.Context) error {
	nss, err := c.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("delete workloads: list namespaces: %w", err)
	}
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	grace := int64(5)
	podOpts := metav1.DeleteOptions{GracePeriodSeconds: &grace}
	var errs []error
	for _, ns := range nss.Items {
		n := ns.Name
		apps, batch := c.client.AppsV1(), c.client.BatchV1()
		for what, del := range map[string]func() error{
			"statefulsets": func() error { return apps.StatefulSets(n).DeleteCollection(ctx, opts, metav1.ListOptions{}) },
			"deployments":  func() error { return apps.Deployments(n).DeleteCollection(ctx, opts, metav1.ListOptions{}) },
			"daemonsets":   func() error { return apps.DaemonSets(n).DeleteCollection(ctx, opts, metav1.ListOptions{}) },
			"replicasets":  func() error { return apps.ReplicaSets(n).DeleteCollection(ctx, opts, metav1.ListOptions{}) },
			"cronjobs":     func() error { return batch.CronJobs(n).DeleteCollection(ctx, opts, metav1.ListOptions{}) },
			"jobs":         func() error { return batch.Jobs(n).DeleteCollection(ctx, opts, metav1.ListOptions{}) },
		} {
			if err := del(); err != nil {
				errs = append(errs, fmt.Errorf("delete %s in namespace %s: %w", what, n, err))
			}
		}
		if err := c.client.CoreV1().Pods(n).DeleteCollection(ctx, podOpts, metav1.ListOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("delete pods in namespace %s: %w", n, err))
		}
	}
	errs = append(errs, wait.For(ctx, "every pod to be gone", 90*time.Second, 300*time.Millisecond, func() (bool, error) {
		pods, err := c.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		if len(pods.Items) > 0 {
			return false, fmt.Errorf("%d pods left, e.g. %s/%s", len(pods.Items), pods.Items[0].Namespace, pods.Items[0].Name)
		}
		return true, nil
	}))
	return errors.Join(errs...)
}

// removeContainers kills and deletes whatever containers (and sandboxes) containerd still has in the CRI's
// namespace, so that their shims exit. It finds none after a clean deleteWorkloads.
func (c *Cluster) removeContainers() error {
	ctr := func(args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, "ctr", append([]string{"--address", c.containerdSocket(), "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	}
	out, err := ctr("containers", "ls", "-q")
	if err != nil {
		return fmt.Errorf("list containers: %w: %s", err, out)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil
	}
	var errs []error
	for _, id := range ids {
		if out, err := ctr("tasks", "delete", "--force", id); err != nil && !bytes.Contains(out, []byte("not found")) {
			errs = append(errs, fmt.Errorf("delete task %s: %w: %s", id, err, out))
		}
		if out, err := ctr("containers", "delete", id); err != nil {
			errs = append(errs, fmt.Errorf("delete container %s: %w: %s", id, err, out))
		}
	}
	return errors.Join(errs...)
}

// cleanHost removes what a cluster in dir leaves on the host once its own processes are stopped: processes that
// name the folder (containerd's shims, or a crashed run's components) and those in the kubelet's pod cgroups,
// mounts below the folder (the kubelet's tmpfs and bind mounts, containerd's rootfs, shm and network namespace
// mounts), the bridge with its veths and forwarding rule, the pod cgroups, the kubelet's log links, CNI caches,
// and the folder itself.
func cleanHost(dir string) error {
	errs := []error{killLeftovers(dir), unmountUnder(dir), removeBridge(), disallowBridgeForwarding(), removePodCgroups()}
	removeLogLinks(dir)
	removeEmpty()
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// killLeftovers kills (SIGKILL, by PID) the processes whose command line names dir, and those in the pods'
// cgroups (under the machine's cluster lock only this cluster's kubelet makes them), then waits until they are gone.
func killLeftovers(dir string) error {
	self := os.Getpid()
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cgroup, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if bytes.Contains(cmdline, []byte(dir+"/")) || bytes.Contains(cgroup, []byte(":/kubepods")) {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return wait.For(context.Background(), "leftover processes to exit", 15*time.Second, 100*time.Millisecond, func() (bool, error) {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) > 0 {
			return false, fmt.Errorf("processes %v still alive", left)
		}
		return true, nil
	})
}

// alive says whether a process exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// unmountUnder lazily unmounts dir and every mount point below it, deepest first, until none is left.
func unmountUnder(dir string) error {
	var points []string
	for range 10 {
		points = mountsUnder(dir)
		if len(points) == 0 {
			return nil
		}
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		for _, p := range points {
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
	return fmt.Errorf("mounts left under %s: %v", dir, points)
}

// mountsUnder lists the mount points that are dir or below it (a point mounted twice is listed twice).
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	return points
}

// removeBridge deletes the pod bridge and any veth still attached to it.
func removeBridge() error {
	if exec.Command("ip", "link", "show", "dev", BridgeName).Run() != nil {
		return nil // no such bridge
	}
	var errs []error
	out, _ := exec.Command("ip", "-o", "link", "show", "master", BridgeName).Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if out, err := exec.Command("ip", "link", "del", "dev", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("remove veth %s: %w: %s", name, err, out))
		}
	}
	if out, err := exec.Command("ip", "link", "del", "dev", BridgeName).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("remove bridge %s: %w: %s", BridgeName, err, out))
	}
	return errors.Join(errs...)
}

// forwardRule accepts traffic between two pods on the bridge. With br_netfilter loaded and
// bridge-nf-call-iptables = 1, bridged frames traverse iptables' FORWARD chain, whose policy Docker sets to DROP;
// Docker accepts its own bridges' traffic the same way.
var forwardRule = []string{"FORWARD", "-i", BridgeName, "-o", BridgeName, "-m", "comment", "--comment", "rotk8s pod-to-pod", "-j", "ACCEPT"}

func allowBridgeForwarding() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil // no iptables: nothing filters the bridge
	}
	if exec.Command("iptables", append([]string{"-C"}, forwardRule...)...).Run() == nil {
		return nil
	}
	args := append([]string{"-I", forwardRule[0], "1"}, forwardRule[1:]...)
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func disallowBridgeForwarding() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil
	}
	for range 10 {
		if exec.Command("iptables", append([]string{"-C"}, forwardRule...)...).Run() != nil {
			return nil
		}
		if out, err := exec.Command("iptables", append([]string{"-D"}, forwardRule...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables -D %s: %w: %s", strings.Join(forwardRule, " "), err, out)
		}
	}
	return nil
}

// removePodCgroups removes the kubelet's kubepods cgroup trees (cgroup v1: one per hierarchy; v2: one), deepest
// first. A cgroup that still holds a process cannot be removed.
func removePodCgroups() error {
	roots := []string{"/sys/fs/cgroup/kubepods"}
	hier, _ := os.ReadDir("/sys/fs/cgroup")
	for _, h := range hier {
		roots = append(roots, filepath.Join("/sys/fs/cgroup", h.Name(), "kubepods"))
	}
	var errs []error
	for _, root := range roots {
		if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeLogLinks removes the kubelet's links in /var/log/containers that point into dir.
func removeLogLinks(dir string) {
	const links = "/var/log/containers"
	entries, _ := os.ReadDir(links)
	for _, e := range entries {
		path := filepath.Join(links, e.Name())
		if target, err := os.Readlink(path); err == nil && strings.HasPrefix(target, dir+"/") {
			_ = os.Remove(path)
		}
	}
}

// removeEmpty removes the kubelet's device-plugin socket (its path is fixed, whatever --root-dir says), CNI's
// cached results for the pod network and for containerd's loopback network (only our containerd runs CNI, under
// the lock), the sockets of shims that were killed (in /run/containerd/s, whatever containerd's state says; only
// those no process listens on), and then the machine-wide folders a cluster run creates if they are empty again:
// /var/lib/kubelet, the kubelet's /var/log/containers, CNI's cache, the shims' socket folder.
func removeEmpty() {
	files, _ := filepath.Glob("/var/lib/cni/results/" + cniNetwork + "-*")
	loopback, _ := filepath.Glob("/var/lib/cni/results/cni-loopback-*")
	files = append(append(files, loopback...), "/var/lib/kubelet/device-plugins/kubelet.sock")
	files = append(files, unboundSockets("/run/containerd/s")...)
	for _, f := range files {
		_ = os.Remove(f)
	}
	for _, d := range []string{"/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/var/log/containers",
		"/var/lib/cni/results", "/var/lib/cni", "/run/containerd/s", "/run/containerd"} {
		_ = syscall.Rmdir(d)
	}
}

// unboundSockets lists the unix socket files in dir that no socket is bound to (/proc/net/unix).
func unboundSockets(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return nil
	}
	table, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return nil
	}
	bound := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n") {
		if f := strings.Fields(line); len(f) >= 8 {
			bound[f[7]] = true
		}
	}
	var stale []string
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if e.Type()&fs.ModeSocket != 0 && !bound[path] {
			stale = append(stale, path)
		}
	}
	return stale
}
