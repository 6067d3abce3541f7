// Package k8s runs a real single-node Kubernetes v1.34.4 on this machine for tests: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and a kubelet, built from the Go module proxy by ensure-k8s.sh, with a
// containerd of its own (Debian's, not Docker's) whose pods sit on a CNI bridge of their own (Bridge, Subnet).
// Every component listens on 127.0.0.1 only, on ports picked free at start; there is no kube-proxy and no cluster
// DNS, so tests reach pods by pod IP from the host (through the bridge) or through the API server's pod proxy.
//
// Only one cluster runs on the machine at a time: Start takes an exclusive flock on LockPath, held until Stop, so
// test packages running at once take turns instead of fighting over the kubelet's cgroups and the fixed bridge.
// Nothing can be pulled: images reach the cluster from the Docker Engine (ImportImage), pods use
// imagePullPolicy: Never, and the pod sandbox image is built here FROM scratch (PauseImage).
//
// Stop deletes the workloads, stops every process by its PID in reverse order of start, and removes what they
// left on the host: shims, mounts, network namespaces, veths, the bridge, cgroups and the cluster's folder. A
// crashed run's leftovers are removed by the next Start.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/qdrantrotator/rotator/testbed/k8sdns"
	"k8s.io/client-go/rest"
)

const (
	// LockPath is the file whose exclusive flock a running cluster holds; it names the cluster's folder.
	LockPath = "/tmp/rotator-k8s.lock"
	// BridgeName is the CNI bridge of the pod network.
	BridgeName = "rotk8s0"
	// PodSubnet is the pod network; the host is its .1 on the bridge.
	PodSubnet = "10.244.77.0/24"
	// DNSAddress is where the cluster's DNS answers (testbed/k8sdns, run by the cluster): the host on the bridge, so
	// the pods of a StatefulSet find each other by name on its headless Service, and no query leaves the machine.
	DNSAddress = "10.244.77.1"
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain = "cluster.local"
	// NodeName is the name of the cluster's only node.
	NodeName = "rotk8s-node"
	// Issuer is the API server's service-account issuer (and default audience).
	Issuer = "https://kubernetes.default.svc"
	// ServiceCIDR is the service cluster IP range (no kube-proxy routes it).
	ServiceCIDR = "10.96.0.0/24"

	cniNetwork = "rotk8s" // the CNI network name (host-local IPAM and result caches are keyed by it)
	dirPrefix  = "rotk8s-"
)

// Options shape a cluster.
type Options struct {
	// Images are Docker Engine images imported into the cluster's containerd at start (docker save | ctr import);
	// an image "foo:tag" is then docker.io/library/foo:tag there, for pods with imagePullPolicy: Never.
	Images []string
}

// Cluster is a running single-node cluster.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig (static token, group system:masters) for Server.
	Kubeconfig string
	// Server is the API server's URL, https://127.0.0.1:PORT.
	Server string
	// CAFile is the PEM file of the CA that signed the API server's serving certificate.
	CAFile string
	// Token is the admin bearer token: test infrastructure only, never a Qdrant key.
	Token string
	// Bridge is the CNI bridge interface of the pod network (the host is the subnet's .1 on it).
	Bridge string
	// Subnet is the pod network, e.g. 10.244.77.0/24.
	Subnet string
	// BinDir is the folder of the binaries (kubectl is there).
	BinDir string
	// ServiceAccountIssuer is the API server's --service-account-issuer (also its default API audience).
	ServiceAccountIssuer string

	dir        string
	lock       *os.File
	ports      ports
	pauseImage string
	client     *kubernetes.Clientset

	mu    sync.Mutex
	procs []*component // in order of start
	dns   *k8sdns.Server
	done  bool
}

// Binaries returns the folder holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
// kubectl v1.34.4: what ensure-k8s.sh prints ($K8S_BIN_DIR, or a build from the Go module proxy cached outside the
// repository; the first build takes about 15 minutes).
func Binaries(ctx context.Context) (string, error) {
	script := filepath.Join(packageDir(), "ensure-k8s.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("kubernetes binaries: %s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Start starts a cluster and returns once its node is Ready and the "default" namespace has its default
// ServiceAccount and kube-root-ca.crt ConfigMap (what a pod needs). It waits for the machine's cluster lock first.
// On failure it removes whatever it started, and the error carries the tail of the failing component's log.
func Start(ctx context.Context, opt Options) (*Cluster, error) {
	binDir, err := Binaries(ctx)
	if err != nil {
		return nil, err
	}
	pause, err := PauseImage(ctx)
	if err != nil {
		return nil, err
	}
	lock, err := acquireLock(ctx)
	if err != nil {
		return nil, err
	}
	if err := sweepStale(lock); err != nil {
		releaseLock(lock)
		return nil, err
	}
	// A short folder: containerd's sockets live below it, and a unix socket path has at most 107 bytes.
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		releaseLock(lock)
		return nil, fmt.Errorf("kubernetes cluster: %w", err)
	}
	c := &Cluster{
		Kubeconfig: filepath.Join(dir, "admin.kubeconfig"), CAFile: filepath.Join(dir, "pki", "ca.crt"),
		Bridge: BridgeName, Subnet: PodSubnet, BinDir: binDir, ServiceAccountIssuer: Issuer,
		dir: dir, lock: lock, pauseImage: pause,
	}
	if err := recordDir(lock, dir); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	if err := c.start(ctx, opt); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

// StartT starts a cluster for a test, stopped by the test's cleanup. It fails the test (never skips) when the
// cluster cannot start.
func StartT(t testing.TB, opt Options) *Cluster {
	t.Helper()
	c, err := Start(context.Background(), opt)
	if err != nil {
		t.Fatalf("a kubernetes test cluster is required: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("kubernetes cluster cleanup: %v", err)
		}
	})
	return c
}

// Dir is the cluster's folder (logs/ holds each component's log).
func (c *Cluster) Dir() string { return c.dir }

// RESTConfig is a client-go configuration for the admin user.
func (c *Cluster) RESTConfig() *rest.Config {
	ca, _ := os.ReadFile(c.CAFile)
	return &rest.Config{Host: c.Server, BearerToken: c.Token, TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		QPS: 50, Burst: 100}
}

// Client is a client-go clientset for the admin user.
func (c *Cluster) Client() *kubernetes.Clientset { return c.client }

// Kubectl runs kubectl against the cluster as the admin user and returns its standard output; a failure carries
// its standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Stop deletes every namespace's workloads and waits until their pods are gone, stops the processes by PID in
// reverse order of start, removes what they left on the host (shims, mounts, network namespaces, veths, the
// bridge, cgroups, the folder) and releases the machine's cluster lock. A second Stop does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return nil
	}
	c.done = true
	var errs []error
	if c.client != nil && c.running("kube-apiserver") && c.running("kubelet") {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		errs = append(errs, c.deleteWorkloads(ctx))
		cancel()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		if p.name == "containerd" {
			// The kubelet is stopped by now: remove what is left of the pods while containerd can still tell.
			errs = append(errs, c.removeContainers())
		}
		errs = append(errs, p.stop())
	}
	c.procs = nil
	if c.dns != nil {
		errs = append(errs, c.dns.Close())
		c.dns = nil
	}
	if c.dir != "" {
		errs = append(errs, cleanHost(c.dir))
		c.dir = ""
	}
	if c.lock != nil {
		clearRecord(c.lock)
		releaseLock(c.lock)
		c.lock = nil
	}
	return errors.Join(errs...)
}

func (c *Cluster) running(name string) bool {
	for _, p := range c.procs {
		if p.name == name {
			return p.alive()
		}
	}
	return false
}
