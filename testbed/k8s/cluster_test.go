package k8s

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/qdrantrotator/rotator/testbed/dockerbed"
	"github.com/qdrantrotator/rotator/testbed/harness"
	"github.com/qdrantrotator/rotator/testbed/wait"
)

const (
	testNamespace    = "standin"
	testStorageClass = "rotk8s-hostpath"
	testReplicas     = 3
)

// TestClusterRunsStandinStatefulSet runs the stand-in the way Qdrant's Helm chart runs Qdrant (a Parallel
// StatefulSet as uid 1000 with a read-only root filesystem, the key from a Secret, local.yaml from the same Secret
// through a subPath mount, storage on a claim), reaches the pods by pod IP and through the API server's pod proxy,
// and checks that Stop leaves nothing behind.
func TestClusterRunsStandinStatefulSet(t *testing.T) {
	ctx := context.Background()
	eng, err := dockerbed.New(ctx)
	if err != nil {
		t.Fatalf("the Docker Engine is required: %v", err)
	}
	image, err := harness.BuildStandinImage(ctx, eng)
	eng.Close()
	if err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	c := StartT(t, Options{Images: []string{image}})
	t.Logf("Start took %s (cluster folder %s, API server %s)", time.Since(began).Round(time.Millisecond), c.Dir(), c.Server)
	dir := c.Dir()

	if out, err := c.Kubectl(ctx, "get", "nodes", "-o", "name"); err != nil || strings.TrimSpace(string(out)) != "node/"+NodeName {
		t.Fatalf("kubectl get nodes = %q, %v", out, err)
	}
	if err := c.HostPathPVs(ctx, testReplicas, testStorageClass); err != nil {
		t.Fatal(err)
	}
	key, readOnlyKey := randomKey(t), randomKey(t)
	cs := c.Client()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "standin-apikey"},
		StringData: map[string]string{
			"api-key":    key,
			"local.yaml": "service:\n  read_only_api_key: " + readOnlyKey + "\n",
		},
	}
	if _, err := cs.CoreV1().Secrets(testNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create secret %s: %v", secret.Name, errorWithout(err, key, readOnlyKey))
	}
	if _, err := cs.AppsV1().StatefulSets(testNamespace).Create(ctx, standinStatefulSet(image), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var pods []corev1.Pod
	err = wait.For(ctx, "the stand-in pods to be Ready", 4*time.Minute, 500*time.Millisecond, func() (bool, error) {
		list, err := cs.CoreV1().Pods(testNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=standin"})
		if err != nil {
			return false, err
		}
		ready := 0
		var why []string
		for _, p := range list.Items {
			if podReady(&p) {
				ready++
			} else {
				why = append(why, p.Name+": "+podState(&p))
			}
		}
		pods = list.Items
		if ready < testReplicas {
			return false, fmt.Errorf("%d of %d ready; %s", ready, testReplicas, strings.Join(why, "; "))
		}
		return true, nil
	})
	if err != nil {
		out, _ := c.Kubectl(ctx, "get", "events", "-A")
		t.Fatalf("%v\nevents:\n%s", err, out)
	}
	t.Logf("%d pods Ready %s after Start", len(pods), time.Since(began).Round(time.Millisecond))

	hc := &http.Client{Timeout: 5 * time.Second}
	for _, p := range pods {
		url := "http://" + p.Status.PodIP + ":6333/collections"
		for _, tc := range []struct {
			name, key string
			want      int
		}{{"no key", "", http.StatusUnauthorized}, {"the api key", key, http.StatusOK}, {"the read-only key from local.yaml", readOnlyKey, http.StatusOK}} {
			if got := get(t, hc, url, "", tc.key); got != tc.want {
				t.Errorf("pod %s (%s): GET /collections with %s = %d, want %d", p.Name, p.Status.PodIP, tc.name, got, tc.want)
			}
		}
	}

	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	apiClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	proxy := fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s:6333/proxy/collections", c.Server, testNamespace, pods[0].Name)
	if got := get(t, apiClient, proxy, c.Token, key); got != http.StatusOK {
		t.Errorf("GET %s through the API server's pod proxy with the key = %d, want 200", proxy, got)
	}
	if got := get(t, apiClient, proxy, c.Token, ""); got != http.StatusUnauthorized {
		t.Errorf("GET %s through the API server's pod proxy without a key = %d, want 401", proxy, got)
	}

	checkVolumes(t, dir)

	// What Vault's Kubernetes auth relies on: a TokenRequest for a ServiceAccount, reviewed by a TokenReview.
	tr, err := cs.CoreV1().ServiceAccounts(testNamespace).CreateToken(ctx, "default", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/default: %v", testNamespace, err)
	}
	review, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tr.Status.Token}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenReview: %v", err)
	}
	if want := "system:serviceaccount:" + testNamespace + ":default"; !review.Status.Authenticated || review.Status.User.Username != want ||
		len(review.Status.Audiences) != 1 || review.Status.Audiences[0] != c.ServiceAccountIssuer {
		t.Errorf("TokenReview: authenticated %v as %q for %v, want %s for [%s]", review.Status.Authenticated,
			review.Status.User.Username, review.Status.Audiences, want, c.ServiceAccountIssuer)
	}

	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	checkNothingLeft(t, dir)
}

func standinStatefulSet(image string) *appsv1.StatefulSet {
	labels := map[string]string{"app": "standin"}
	replicas := int32(testReplicas)
	storageClass := testStorageClass
	uid, fsGroup := int64(1000), int64(1000)
	yes, no := true, false
	secretMode := int32(0o400)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "standin"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         "standin-headless",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext:               &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &uid, FSGroup: &fsGroup, RunAsNonRoot: &yes},
					TerminationGracePeriodSeconds: ptr(int64(5)),
					Containers: []corev1.Container{{
						Name:            "qdrant",
						Image:           image,
						ImagePullPolicy: corev1.PullNever,
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 6333}},
						Env: []corev1.EnvVar{
							{Name: "QDRANT__SERVICE__API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "standin-apikey"}, Key: "api-key"}}},
							{Name: "QDRANT_INIT_FILE_PATH", Value: "/qdrant/init/.qdrant-initialized"},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(6333)}},
							PeriodSeconds: 1,
						},
						SecurityContext: &corev1.SecurityContext{
							ReadOnlyRootFilesystem: &yes, AllowPrivilegeEscalation: &no,
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "storage", MountPath: "/qdrant/storage"},
							{Name: "config", MountPath: "/qdrant/config/local.yaml", SubPath: "local.yaml", ReadOnly: true},
							{Name: "snapshots", MountPath: "/qdrant/snapshots"},
							{Name: "init", MountPath: "/qdrant/init"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
							SecretName: "standin-apikey", DefaultMode: &secretMode,
							Items: []corev1.KeyToPath{{Key: "local.yaml", Path: "local.yaml"}}}}},
						{Name: "snapshots", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "init", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "storage"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: &storageClass,
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// get returns the status of a GET with an optional bearer token (the API server's) and api-key header (Qdrant's).
func get(t *testing.T, hc *http.Client, url, bearer, apiKey string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if apiKey != "" {
		req.Header.Set("api-key", apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podState says why a pod is not Ready yet: its phase, conditions and container states.
func podState(p *corev1.Pod) string {
	s := string(p.Status.Phase)
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			s += fmt.Sprintf(" %s=%s(%s)", c.Type, c.Status, c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			s += fmt.Sprintf(" %s waiting: %s %s", cs.Name, w.Reason, w.Message)
		}
		if x := cs.State.Terminated; x != nil {
			s += fmt.Sprintf(" %s terminated: %s %d", cs.Name, x.Reason, x.ExitCode)
		}
	}
	return s
}

// checkVolumes checks what uid 1000 got on the host: its files on the host-path volumes, and the subPath Secret
// file with defaultMode 0400 made group-readable (0440) for the pod's fsGroup.
func checkVolumes(t *testing.T, dir string) {
	t.Helper()
	written := 0
	vols, _ := filepath.Glob(filepath.Join(dir, "volumes", testStorageClass+"-*"))
	for _, v := range vols {
		entries, _ := os.ReadDir(v)
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Sys().(*syscall.Stat_t).Uid == 1000 {
				written++
				break
			}
		}
	}
	if written != testReplicas {
		t.Errorf("%d of %d host-path volumes hold a file of uid 1000", written, testReplicas)
	}
	var secretFiles []string
	_ = filepath.WalkDir(filepath.Join(dir, "kubelet", "pods"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "local.yaml" && strings.Contains(path, "kubernetes.io~secret") {
			secretFiles = append(secretFiles, path)
		}
		return nil
	})
	if len(secretFiles) == 0 {
		t.Error("no Secret volume file local.yaml under the kubelet's pods")
	}
	for _, f := range secretFiles {
		fi, err := os.Stat(f)
		if err != nil {
			t.Error(err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o440 || st.Uid != 0 || st.Gid != 1000 {
			t.Errorf("%s: mode %v uid %d gid %d, want -r--r----- 0 1000 (defaultMode 0400 with fsGroup 1000)", f, fi.Mode().Perm(), st.Uid, st.Gid)
		}
	}
}

// checkNothingLeft checks that no process, mount, bridge, pod cgroup or folder of the cluster is left.
func checkNothingLeft(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cgroup, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if bytes.Contains(cmdline, []byte(dir)) || bytes.Contains(cgroup, []byte(":/kubepods")) {
			t.Errorf("process %s left: %s", e.Name(), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
	if m := mountsUnder(dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if out, err := exec.Command("ip", "link", "show", "dev", BridgeName).CombinedOutput(); err == nil {
		t.Errorf("bridge %s left: %s", BridgeName, out)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("folder %s left", dir)
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/kubepods"); err == nil {
		t.Error("cgroup /sys/fs/cgroup/memory/kubepods left")
	}
	if _, err := os.Stat("/var/lib/kubelet/device-plugins/kubelet.sock"); err == nil {
		t.Error("the kubelet's /var/lib/kubelet/device-plugins/kubelet.sock is left")
	}
	if netns, _ := filepath.Glob("/var/run/netns/cni-*"); len(netns) > 0 {
		t.Errorf("network namespaces left: %v", netns)
	}
	if exec.Command("iptables", append([]string{"-C"}, forwardRule...)...).Run() == nil {
		t.Error("the bridge's FORWARD rule is left")
	}
}

func randomKey(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// errorWithout is err's text with the keys redacted (an API error may echo what was sent).
func errorWithout(err error, keys ...string) string {
	s := err.Error()
	for _, k := range keys {
		s = strings.ReplaceAll(s, k, "<redacted>")
	}
	return s
}
