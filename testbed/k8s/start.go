package k8s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/qdrantrotator/rotator/testbed/dockerbed"
	"github.com/qdrantrotator/rotator/testbed/k8sdns"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

// ports are the cluster's 127.0.0.1 ports, each free when picked.
type ports struct {
	etcdClient, etcdPeer, apiserver, controllerManager, scheduler, kubelet int
}

func (c *Cluster) start(ctx context.Context, opt Options) error {
	if err := removeBridge(); err != nil { // a stale one, from a run that could not clean up
		return err
	}
	var err error
	if c.ports, err = freePorts(); err != nil {
		return err
	}
	c.Server = "https://127.0.0.1:" + strconv.Itoa(c.ports.apiserver)
	if err := c.writeFiles(); err != nil {
		return err
	}
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return err
	}
	if err := c.startContainerd(ctx); err != nil {
		return err
	}
	for _, image := range append([]string{c.pauseImage}, opt.Images...) {
		if err := c.ImportImage(ctx, image); err != nil {
			return err
		}
	}
	if err := allowBridgeForwarding(); err != nil {
		return err
	}
	if _, err := c.run("kube-controller-manager",
		"--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig,
		"--service-account-private-key-file", c.path("pki", "sa.key"), "--root-ca-file", c.CAFile,
		"--controllers", "*,-nodeipam", "--leader-elect=false", "--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(c.ports.controllerManager), "--cert-dir", c.path("controller-manager"),
		"--cluster-name", "rotk8s"); err != nil {
		return err
	}
	if _, err := c.run("kube-scheduler",
		"--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig,
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.ports.scheduler),
		"--cert-dir", c.path("scheduler")); err != nil {
		return err
	}
	// Bound before the bridge exists (IP_FREEBIND): it answers once the first pod brings the bridge up.
	if c.dns, err = k8sdns.Serve(context.WithoutCancel(ctx), net.JoinHostPort(DNSAddress, "53"), c.client, ClusterDomain); err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	kubelet, err := c.run("kubelet", "--config", c.path("kubelet.yaml"), "--kubeconfig", c.Kubeconfig,
		"--root-dir", c.path("kubelet"), "--cert-dir", c.path("kubelet", "pki"), "--hostname-override", NodeName,
		"--node-ip", "127.0.0.1")
	if err != nil {
		return err
	}
	if err := c.waitNodeReady(ctx, kubelet); err != nil {
		return err
	}
	return c.waitDefaultNamespace(ctx)
}

// path is a path in the cluster's folder.
func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	client := "http://127.0.0.1:" + strconv.Itoa(c.ports.etcdClient)
	peer := "http://127.0.0.1:" + strconv.Itoa(c.ports.etcdPeer)
	etcd, err := c.run("etcd", "--name", "rotk8s", "--data-dir", c.path("etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "rotk8s="+peer,
		// A throwaway store: no fsync (the machine's disk is shared by parallel builds).
		"--unsafe-no-fsync")
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	return wait.For(ctx, "etcd to answer on "+client, 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		if err := etcd.exitError(); err != nil {
			return false, wait.Abort(err)
		}
		resp, err := hc.Get(client + "/health")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	apiserver, err := c.run("kube-apiserver",
		"--etcd-servers", "http://127.0.0.1:"+strconv.Itoa(c.ports.etcdClient),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.ports.apiserver),
		"--cert-dir", c.path("apiserver"),
		"--tls-cert-file", c.path("pki", "apiserver.crt"), "--tls-private-key-file", c.path("pki", "apiserver.key"),
		"--token-auth-file", c.path("pki", "tokens.csv"), "--authorization-mode", "RBAC",
		"--service-account-key-file", c.path("pki", "sa.pub"), "--service-account-signing-key-file", c.path("pki", "sa.key"),
		"--service-account-issuer", Issuer, "--service-cluster-ip-range", ServiceCIDR,
		// A loopback advertise address makes the endpoint reconciler log an error every 10 s.
		"--endpoint-reconciler-type", "none",
		// The node's Hostname address (its name) resolves nowhere: reach the kubelet (logs, exec) by its InternalIP.
		"--kubelet-preferred-address-types", "InternalIP", "--profiling=false")
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return fmt.Errorf("kubernetes cluster: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	err = wait.For(ctx, "kube-apiserver to be ready at "+c.Server, 3*time.Minute, 500*time.Millisecond, func() (bool, error) {
		if err := apiserver.exitError(); err != nil {
			return false, wait.Abort(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/readyz", nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("GET /readyz: %s", resp.Status)
		}
		return true, nil
	})
	if err != nil {
		return apiserver.withLog(err)
	}
	c.client, err = kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	return nil
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	containerd, err := c.runBinary("containerd", "/usr/bin/containerd", "--config", c.path("containerd", "config.toml"))
	if err != nil {
		return err
	}
	err = wait.For(ctx, "containerd to answer on "+c.containerdSocket(), 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		if err := containerd.exitError(); err != nil {
			return false, wait.Abort(err)
		}
		out, err := exec.CommandContext(ctx, "ctr", "--address", c.containerdSocket(), "version").CombinedOutput()
		if err != nil {
			return false, fmt.Errorf("ctr version: %w: %s", err, out)
		}
		return true, nil
	})
	return containerd.withLog(err)
}

func (c *Cluster) containerdSocket() string { return c.path("containerd", "containerd.sock") }

// ImportImage copies an image of the Docker Engine (the DOCKER_* environment) into the cluster's containerd, where
// an image "foo:tag" is docker.io/library/foo:tag (pods name it "foo:tag" with imagePullPolicy: Never).
func (c *Cluster) ImportImage(ctx context.Context, image string) error {
	load := exec.CommandContext(ctx, "ctr", "--address", c.containerdSocket(), "--namespace", "k8s.io",
		"images", "import", "--snapshotter", "native", "-")
	if err := dockerbed.SaveInto(ctx, image, load); err != nil {
		return fmt.Errorf("import image %s: %w", image, err)
	}
	return nil
}

// waitNodeReady waits until the node has registered and reports Ready.
func (c *Cluster) waitNodeReady(ctx context.Context, kubelet *component) error {
	err := wait.For(ctx, "node "+NodeName+" to be Ready", 3*time.Minute, 500*time.Millisecond, func() (bool, error) {
		if err := kubelet.exitError(); err != nil {
			return false, wait.Abort(err)
		}
		for _, p := range c.procs {
			if err := p.exitError(); err != nil {
				return false, wait.Abort(err)
			}
		}
		node, err := c.client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if len(node.Status.Addresses) == 0 {
			// The kubelet refuses to report a loopback --node-ip ("nodeIP can't be loopback address") and then
			// leaves the addresses alone: give the node its address here, or the API server finds no way to
			// its kubelet (kubectl logs, exec, port-forward: "no preferred addresses found").
			patch := fmt.Sprintf(`{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"},{"type":"Hostname","address":%q}]}}`, NodeName)
			if _, err := c.client.CoreV1().Nodes().PatchStatus(ctx, NodeName, []byte(patch)); err != nil {
				return false, fmt.Errorf("set the addresses of node %s: %w", NodeName, err)
			}
			return false, fmt.Errorf("node %s: addresses just set", NodeName)
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return true, nil
				}
				return false, fmt.Errorf("node %s: Ready=%s: %s", NodeName, cond.Status, cond.Message)
			}
		}
		return false, fmt.Errorf("node %s: no Ready condition yet", NodeName)
	})
	return kubelet.withLog(err)
}

// waitDefaultNamespace waits for what the controller manager gives a namespace before a pod can run there: the
// default ServiceAccount and the kube-root-ca.crt ConfigMap (a pod's projected token volume needs both).
func (c *Cluster) waitDefaultNamespace(ctx context.Context) error {
	cm := c.component("kube-controller-manager")
	err := wait.For(ctx, "the default ServiceAccount and kube-root-ca.crt in namespace default", 2*time.Minute, 300*time.Millisecond, func() (bool, error) {
		if err := cm.exitError(); err != nil {
			return false, wait.Abort(err)
		}
		if _, err := c.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, err
		}
		if _, err := c.client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); err != nil {
			return false, err
		}
		return true, nil
	})
	return cm.withLog(err)
}

// freePorts picks six distinct 127.0.0.1 TCP ports, free at the moment.
func freePorts() (ports, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var p []int
	for range 6 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, fmt.Errorf("kubernetes cluster: free port: %w", err)
		}
		ls = append(ls, l)
		p = append(p, l.Addr().(*net.TCPAddr).Port)
	}
	return ports{etcdClient: p[0], etcdPeer: p[1], apiserver: p[2], controllerManager: p[3], scheduler: p[4], kubelet: p[5]}, nil
}

// packageDir is this package's source folder (ensure-k8s.sh is there; the repository root is two levels up).
func packageDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Dir(file)
}
