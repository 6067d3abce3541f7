package k8s

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// writeFiles writes the certificates and keys, the token file, the admin kubeconfig and the configurations of
// containerd, the CNI network and the kubelet.
func (c *Cluster) writeFiles() error {
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("kubernetes cluster: admin token: %w", err)
	}
	c.Token = hex.EncodeToString(token)
	files, err := certificates()
	if err != nil {
		return fmt.Errorf("kubernetes cluster: %w", err)
	}
	files["pki/tokens.csv"] = []byte(c.Token + ",admin,admin,system:masters\n")
	files["admin.kubeconfig"] = c.kubeconfig(files["pki/ca.crt"])
	files["containerd/config.toml"] = []byte(c.containerdConfig())
	files["cni/net.d/10-rotk8s.conflist"] = c.cniConfig()
	files["kubelet.yaml"] = []byte(c.kubeletConfig())
	for name, data := range files {
		path := c.path(filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("kubernetes cluster: %w", err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("kubernetes cluster: %w", err)
		}
	}
	// The host-path volumes' parent (HostPathPVs): every user may reach the folders below it.
	if err := os.MkdirAll(c.path("volumes"), 0o755); err != nil {
		return fmt.Errorf("kubernetes cluster: %w", err)
	}
	return os.Chmod(c.dir, 0o755)
}

// certificates makes a CA (ECDSA P-256, valid a day), the API server's serving certificate it signs (127.0.0.1,
// localhost, the kubernetes service's names and its cluster IP 10.96.0.1) and the service-account RSA key pair.
// The keys are names in pki/ of the cluster's folder.
func certificates() (map[string][]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rotk8s test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("API server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("API server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("API server key: %w", err)
	}
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	return map[string][]byte{
		"pki/ca.crt":        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"pki/apiserver.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"pki/apiserver.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"pki/sa.key":        pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sa)}),
		"pki/sa.pub":        pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
	}, nil
}

// kubeconfig is the admin kubeconfig (the CA inline), used by the tests and by every component.
func (c *Cluster) kubeconfig(ca []byte) []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: rotk8s
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: rotk8s
  context:
    cluster: rotk8s
    user: admin
current-context: rotk8s
`, c.Server, base64.StdEncoding.EncodeToString(ca), c.Token))
}

// containerdConfig is a containerd of the cluster's own (root, state, sockets, runc root all in its folder): the
// native snapshotter (overlayfs may not work on this kernel's filesystem), restrict_oom_score_adj (runc cannot give
// the sandbox the oom_score_adj -998 the kubelet asks for otherwise: "can't get final child's PID from pipe: EOF"),
// our own pause image, and network namespaces mounted under its state folder, not /var/run/netns.
func (c *Cluster) containerdConfig() string {
	ctr := c.path("containerd")
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = %[3]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
    max_conf_num = 1
`, filepath.Join(ctr, "root"), filepath.Join(ctr, "state"), c.containerdSocket(), filepath.Join(ctr, "opt"),
		"docker.io/library/"+c.pauseImage, filepath.Join(ctr, "runc"), c.path("cni", "net.d"))
}

// cniConfig is the pod network: a bridge whose host side is the gateway (.1), no masquerading (pod traffic stays
// on the bridge), host-local addresses recorded in the cluster's folder.
func (c *Cluster) cniConfig() []byte {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       cniNetwork,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": BridgeName, "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type": "host-local", "dataDir": c.path("cni", "ipam"),
					"ranges": []any{[]any{map[string]any{"subnet": PodSubnet}}},
				},
			},
			map[string]any{"type": "loopback"},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	return b
}

// kubeletConfig keeps the kubelet on loopback (no authentication of its callers, which are the API server and
// tests on this machine), on cgroup v1 with cgroupfs, off the host's iptables, and away from evicting pods or
// collecting images because the disk is fuller than a real node's would be.
func (c *Cluster) kubeletConfig() string {
	return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: ` + strconv.Itoa(c.ports.kubelet) + `
readOnlyPort: 0
healthzPort: 0
containerRuntimeEndpoint: unix://` + c.containerdSocket() + `
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
podLogsDir: ` + c.path("pod-logs") + `
maxPods: 110
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
  imagefs.inodesFree: "1%"
evictionPressureTransitionPeriod: 5s
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
clusterDNS: ["` + DNSAddress + `"]
clusterDomain: ` + ClusterDomain + `
resolvConf: ""
`
}
