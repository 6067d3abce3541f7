package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/harness"
	"github.com/qdrantrotator/rotator/testbed/k8s"
	"github.com/qdrantrotator/rotator/testbed/vaultdev"
	"github.com/qdrantrotator/rotator/testbed/wait"
	"github.com/qdrantrotator/rotator/vaultsync"
)

// kubeShared is the Kubernetes cluster the tests of this package share: started by the first test that needs it
// (about 30 s), stopped by TestMain when every test has run.
var kubeShared struct {
	sync.Mutex
	c     *k8s.Cluster
	image string // the stand-in image, imported into the cluster
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	kubeShared.Lock()
	if kubeShared.c != nil {
		if err := kubeShared.c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop the test cluster: %v\n", err)
			code = 1
		}
	}
	kubeShared.Unlock()
	os.Exit(code)
}

// kubeCluster returns the shared cluster, starting it on first use; a cluster that cannot start fails the test.
func kubeCluster(t testing.TB) (*k8s.Cluster, string) {
	t.Helper()
	kubeShared.Lock()
	defer kubeShared.Unlock()
	if kubeShared.c == nil && kubeShared.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute) // a cold build of the binaries included
		defer cancel()
		image := harness.NewT(t).StandinImageT(t)
		start := time.Now()
		kubeShared.c, kubeShared.err = k8s.Start(ctx, k8s.Options{Images: []string{image}})
		kubeShared.image = image
		t.Logf("the Kubernetes test cluster started in %s", time.Since(start).Round(time.Second))
	}
	if kubeShared.err != nil {
		t.Fatalf("the Kubernetes test cluster: %v", kubeShared.err)
	}
	return kubeShared.c, kubeShared.image
}

// kubeOpts shape a Kubernetes fixture.
type kubeOpts struct {
	// layout is the deployment's layout: local.yaml or env.
	layout string
	// env adds variables to the Qdrant container (fault knobs).
	env []corev1.EnvVar
	// pdb applies a PodDisruptionBudget with this maxUnavailable (nil: none).
	pdb *int
	// readyTimeout is the deployment's ready_timeout (default 60s).
	readyTimeout string
	// shippedProbe keeps the readiness probe as deploy/kubernetes ships it (first check after 5 s, then every 5 s);
	// the tests otherwise check every second from the start.
	shippedProbe bool
	// unreadableConfig mounts local.yaml 0400 with no fsGroup, so the pods' user cannot read it.
	unreadableConfig bool
	// cluster makes the pods peers of one stand-in Qdrant cluster with enforce_internal_auth (pod 0 founds it, the
	// others join it by its DNS name on the headless Service), and the deployment `cluster: {internal_auth: true}`.
	cluster bool
}

// kubeFixture is a fixture whose nodes are the pods of a 3-replica StatefulSet applied from deploy/kubernetes/qdrant
// into a namespace of its own, with the stand-in image.
type kubeFixture struct {
	*fixture
	c  *k8s.Cluster
	cs kubernetes.Interface
	ns string
	// manifests are the Qdrant manifests as the test applied them (the operator's files).
	manifests []byte
}

const (
	kubeSecret   = "qdrant-apikey"
	kubeReplicas = 3
)

func newKubeFixture(t testing.TB, o kubeOpts) *kubeFixture {
	t.Helper()
	ctx := context.Background()
	c, image := kubeCluster(t)
	cs := c.Client()
	kf := &kubeFixture{c: c, cs: cs, ns: "rot-" + randomHex(3)}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kf.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kf.deleteNamespace(t) })
	kubeShared.Lock() // HostPathPVs names its volumes after those that exist
	err := c.HostPathPVs(ctx, kubeReplicas, "qdrant-storage")
	kubeShared.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, mode: "kubernetes", scheme: "http", vault: vaultdev.StartT(t),
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	kf.fixture = f
	if f.k1, err = rotation.NewKey(); err != nil {
		t.Fatal(err)
	}
	data := map[string][]byte{"api-key": []byte(f.k1.Reveal())}
	file := "statefulset-env.yaml"
	if o.layout == "local.yaml" {
		file = "statefulset.yaml"
		data["local.yaml"] = []byte("# keys managed by the qdrant rotator\nservice:\n  api_key: " + f.k1.Reveal() + "\n  max_request_size_mb: 32\n")
	}
	if _, err := cs.CoreV1().Secrets(kf.ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: kubeSecret}, Data: data}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range kubeReplicas {
		f.names = append(f.names, fmt.Sprintf("qdrant-%d", i))
	}
	if o.cluster {
		// As the chart's start script does, without a shell: pod 0 founds the cluster alone, then every pod gets
		// --bootstrap to pod 0 (pod 0, which has its cluster state by then, ignores it) and the others join.
		env := append(o.env, corev1.EnvVar{Name: "QDRANT__CLUSTER__ENABLED", Value: "true"},
			corev1.EnvVar{Name: "QDRANT__SERVICE__ENFORCE_INTERNAL_AUTH", Value: "true"},
			corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}})
		founder := qdrantManifests(t, image, file, env, o.shippedProbe, false, 1, "--uri", "http://$(POD_NAME).qdrant-headless:6335")
		kf.apply(founder)
		names := f.names
		f.names = names[:1]
		kf.waitReady()
		f.names = names
		kf.manifests = qdrantManifests(t, image, file, env, o.shippedProbe, false, kubeReplicas, "--uri", "http://$(POD_NAME).qdrant-headless:6335",
			"--bootstrap", "http://qdrant-0.qdrant-headless:6335")
	} else {
		kf.manifests = qdrantManifests(t, image, file, o.env, o.shippedProbe, o.unreadableConfig, kubeReplicas)
	}
	if o.pdb != nil {
		kf.manifests = append(kf.manifests, pdbManifest(t, *o.pdb)...)
	}
	kf.apply(kf.manifests)
	if o.cluster {
		kf.rolloutStatus()
	}
	kf.waitReady()
	f.urlOf = kf.podURL
	f.store, err = vaultsync.New(vaultsync.Options{Address: f.vault.Addr, Token: f.vault.Token, Mount: "secret", Prefix: "qdrant"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Publish(ctx, deployment, rotation.SlotAdmin, rotation.KeyRecord{Key: f.k1, Since: time.Now(), RotationID: "adopted"}, 0); err != nil {
		t.Fatal(err)
	}
	f.dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(f.dir, "token"), []byte(f.vault.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`vault:
  address: %s
  token_file: token
  mount: secret
  prefix: qdrant
  lease_ttl: 3s
deployments:
  - name: %s
    mode: kubernetes
    kubernetes:
      kubeconfig: %s
      namespace: %s
      statefulset: qdrant
      secret: %s
      layout: %s
    grace: 1s
    ready_timeout: %s
    stop_timeout: 40s
`, f.vault.Addr, deployment, c.Kubeconfig, kf.ns, kubeSecret, o.layout, cmpOr(o.readyTimeout, "60s"))
	if o.cluster {
		cfg += "    cluster: {internal_auth: true}\n"
	}
	f.config = filepath.Join(f.dir, "rotator.yml")
	if err := os.WriteFile(f.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return kf
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// qdrantManifests reads the headless Service and a StatefulSet of deploy/kubernetes/qdrant and makes them run the
// stand-in image, which the cluster cannot pull, in the test's namespace; everything else stays as shipped.
func qdrantManifests(t testing.TB, image, statefulSet string, env []corev1.EnvVar, shippedProbe, unreadable bool, replicas int32, args ...string) []byte {
	t.Helper()
	dir := filepath.Join("..", "..", "deploy", "kubernetes", "qdrant")
	svc, err := os.ReadFile(filepath.Join(dir, "service-headless.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, statefulSet))
	if err != nil {
		t.Fatal(err)
	}
	var sts appsv1.StatefulSet
	if err := yaml.UnmarshalStrict(raw, &sts); err != nil {
		t.Fatalf("%s: %v", statefulSet, err)
	}
	sts.Namespace = ""
	c := &sts.Spec.Template.Spec.Containers[0]
	c.Image, c.ImagePullPolicy = image, corev1.PullNever
	c.Env = append(c.Env, env...)
	c.Args = args
	sts.Spec.Replicas = &replicas
	if unreadable {
		sts.Spec.Template.Spec.SecurityContext.FSGroup = nil
		for i := range sts.Spec.Template.Spec.Volumes {
			if v := sts.Spec.Template.Spec.Volumes[i].Secret; v != nil {
				v.DefaultMode = ptrTo(int32(0o400))
			}
		}
	}
	if !shippedProbe {
		// The test bed's only change of timing: a pod is Ready as soon as /readyz answers, not 5 to 10 s later.
		c.ReadinessProbe.InitialDelaySeconds, c.ReadinessProbe.PeriodSeconds = 0, 1
	}
	out, err := yaml.Marshal(&sts)
	if err != nil {
		t.Fatal(err)
	}
	var svcObj corev1.Service
	if err := yaml.UnmarshalStrict(svc, &svcObj); err != nil {
		t.Fatal(err)
	}
	svcObj.Namespace = ""
	svcOut, err := yaml.Marshal(&svcObj)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Concat(svcOut, []byte("---\n"), out)
}

// pdbManifest is deploy/kubernetes/qdrant/pdb.yaml with maxUnavailable set.
func pdbManifest(t testing.TB, maxUnavailable int) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "qdrant", "pdb.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pdb map[string]any
	if err := yaml.Unmarshal(raw, &pdb); err != nil {
		t.Fatal(err)
	}
	delete(pdb["metadata"].(map[string]any), "namespace")
	pdb["spec"].(map[string]any)["maxUnavailable"] = maxUnavailable
	out, err := yaml.Marshal(pdb)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte("---\n"), out...)
}

// apply runs `kubectl apply` with the manifests in the fixture's namespace, as an operator (or a helm upgrade)
// would.
func (kf *kubeFixture) apply(manifests []byte) {
	kf.t.Helper()
	cmd := exec.Command(filepath.Join(kf.c.BinDir, "kubectl"), "--kubeconfig", kf.c.Kubeconfig, "-n", kf.ns, "apply", "-f", "-")
	cmd.Stdin = bytes.NewReader(manifests)
	if out, err := cmd.CombinedOutput(); err != nil {
		kf.t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// deleteNamespace deletes the namespace and waits until its pods are gone.
func (kf *kubeFixture) deleteNamespace(t testing.TB) {
	ctx := context.Background()
	if err := kf.cs.CoreV1().Namespaces().Delete(ctx, kf.ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", kf.ns, err)
		return
	}
	wait.UntilEvery(t, "the pods of namespace "+kf.ns+" to be gone", 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		pods, err := kf.cs.CoreV1().Pods(kf.ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0, nil
	})
}

// waitReady waits until every pod of the StatefulSet is Ready.
func (kf *kubeFixture) waitReady() {
	kf.t.Helper()
	wait.UntilEvery(kf.t, "the StatefulSet's pods to be Ready", 3*time.Minute, 500*time.Millisecond, func() (bool, error) {
		for _, name := range kf.names {
			p, err := kf.cs.CoreV1().Pods(kf.ns).Get(context.Background(), name, metav1.GetOptions{})
			if err != nil || !podIsReady(p) {
				return false, nil
			}
		}
		return true, nil
	})
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil
		}
	}
	return false
}

// podURL is a pod's REST URL at its pod IP, on the cluster's bridge.
func (kf *kubeFixture) podURL(ctx context.Context, name string) (string, error) {
	p, err := kf.cs.CoreV1().Pods(kf.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
		return "", fmt.Errorf("pod %s has no IP", name)
	}
	return "http://" + net.JoinHostPort(p.Status.PodIP, "6333"), nil
}

// statefulSet returns the StatefulSet's spec as JSON and its generation.
func (kf *kubeFixture) statefulSet() (string, int64) {
	kf.t.Helper()
	sts, err := kf.cs.AppsV1().StatefulSets(kf.ns).Get(context.Background(), "qdrant", metav1.GetOptions{})
	if err != nil {
		kf.t.Fatal(err)
	}
	b, err := json.Marshal(sts.Spec)
	if err != nil {
		kf.t.Fatal(err)
	}
	return string(b), sts.Generation
}

// podWatch records the order in which the pods are replaced (a new UID under the same name).
type podWatch struct {
	mu    sync.Mutex
	order []string
	stop  chan struct{}
	done  chan struct{}
}

func (kf *kubeFixture) watchPods() *podWatch {
	w := &podWatch{stop: make(chan struct{}), done: make(chan struct{})}
	uids := map[string]string{}
	look := func() {
		for _, name := range kf.names {
			p, err := kf.cs.CoreV1().Pods(kf.ns).Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			if old, ok := uids[name]; ok && old != string(p.UID) {
				w.mu.Lock()
				w.order = append(w.order, name)
				w.mu.Unlock()
			}
			uids[name] = string(p.UID)
		}
	}
	look()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				look()
				return
			case <-tick.C:
				look()
			}
		}
	}()
	return w
}

// Stop ends the watch and returns the pods in the order they were replaced.
func (w *podWatch) Stop() []string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.order)
}

// TestKubernetesRotation rotates a 3-replica StatefulSet applied from deploy/kubernetes/qdrant, in the Secret's
// local.yaml layout (Qdrant's Helm chart) and in the env layout, while a prober that reads Vault's consumer path
// before each call hits every pod: no call may be refused, every point written before is still there, the pods are
// replaced one at a time in ordinal order twice, and the StatefulSet is left exactly as it was. Then the operator's
// manifests are applied again and the pods rolled, as a later `helm upgrade` would: the retired key must not come
// back.
func TestKubernetesRotation(t *testing.T) {
	t.Parallel() // the Kubernetes tests wait on pods more than they compute: they run together, after the others
	for _, layout := range []string{"local.yaml", "env"} {
		t.Run(layout, func(t *testing.T) {
			t.Parallel()
			kf := newKubeFixture(t, kubeOpts{layout: layout})
			spec, gen := kf.statefulSet()
			w := kf.watchPods()
			start := time.Now()
			cur, out := kf.rotateUnderProbe(20)
			order := w.Stop()
			t.Logf("rotation took %s; pods replaced in order %v", time.Since(start).Round(100*time.Millisecond), order)
			want := []string{"qdrant-0", "qdrant-1", "qdrant-2", "qdrant-0", "qdrant-1", "qdrant-2"}
			if !slices.Equal(order, want) {
				t.Errorf("pods replaced in order %v, want %v", order, want)
			}
			if s, g := kf.statefulSet(); s != spec || g != gen {
				t.Errorf("the StatefulSet changed (generation %d -> %d)", gen, g)
			}
			if !strings.Contains(out, "evict pod qdrant-1") {
				t.Errorf("the rotator's output never says how it restarts a pod:\n%s", out)
			}
			sec, err := kf.cs.CoreV1().Secrets(kf.ns).Get(context.Background(), kubeSecret, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for key, v := range sec.Data {
				if bytes.Contains(v, []byte(kf.k1.Reveal())) {
					t.Errorf("the Secret's %s still holds the retired key", key)
				}
			}
			if _, ok := sec.Data["alt-api-key"]; ok {
				t.Errorf("the Secret keeps an alt-api-key after the rotation")
			}

			// A helm upgrade: the same manifests applied again, and the pods rolled by the StatefulSet controller.
			kf.apply(kf.manifests)
			kf.rolloutRestart()
			kf.assertKeys(cur.Key, kf.k1)
			kf.assertNoLeak(cur.Key)
		})
	}
}

// rolloutRestart does what `kubectl rollout restart statefulset/qdrant` does and waits for the rollout to end.
func (kf *kubeFixture) rolloutRestart() {
	kf.t.Helper()
	cmd := exec.Command(filepath.Join(kf.c.BinDir, "kubectl"), "--kubeconfig", kf.c.Kubeconfig, "-n", kf.ns, "rollout", "restart", "statefulset/qdrant")
	if out, err := cmd.CombinedOutput(); err != nil {
		kf.t.Fatalf("kubectl rollout restart: %v\n%s", err, out)
	}
	kf.rolloutStatus()
	kf.waitReady()
}

// rolloutStatus waits, as `kubectl rollout status` does, for the StatefulSet's rollout to end.
func (kf *kubeFixture) rolloutStatus() {
	kf.t.Helper()
	cmd := exec.Command(filepath.Join(kf.c.BinDir, "kubectl"), "--kubeconfig", kf.c.Kubeconfig, "-n", kf.ns, "rollout", "status", "statefulset/qdrant", "--timeout=5m")
	if out, err := cmd.CombinedOutput(); err != nil {
		kf.t.Fatalf("kubectl rollout status: %v\n%s", err, out)
	}
}

// TestKubernetesFaults breaks a rotation of a StatefulSet the ways an operator's cluster would:
//   - the rotator is killed (SIGKILL) right before it evicts a pod, in staging and again in promotion; a rerun
//     finishes the rotation, no client call is ever refused, and the StatefulSet is untouched;
//   - a pod that can never become Ready with the new keys (it crash-loops once an alt key is set) rolls the rotation
//     back: exit 5, Vault keeps the old key, every pod serves it again;
//   - a PodDisruptionBudget with maxUnavailable 0 forbids every eviction: the rotator says so, changes nothing
//     (the Secret is as it was, no pod restarted), and exits 5.
func TestKubernetesFaults(t *testing.T) {
	t.Parallel() // the Kubernetes tests wait on pods more than they compute: they run together, after the others
	bin := buildRotator(t)
	t.Run("SIGKILL", func(t *testing.T) {
		t.Parallel()
		kf := newKubeFixture(t, kubeOpts{layout: "local.yaml"})
		spec, gen := kf.statefulSet()
		kf.writePoints(10)
		p := kf.startProber()
		defer p.Stop()
		for _, point := range []string{"stage:qdrant-1:begin", "promote:qdrant-2:begin"} {
			code, out := kf.runRotatorProcess(bin, crashHookEnv+"="+point)
			if code != -int(syscall.SIGKILL) {
				t.Fatalf("crash at %s: the rotator exited %d instead of being killed:\n%s", point, code, out)
			}
			wait.UntilEvery(t, "a rerun after a crash at "+point+" not to find the journal locked", time.Minute, 500*time.Millisecond, func() (bool, error) {
				code, out = kf.runRotatorProcess(bin)
				return code != exitLocked, nil
			})
			if code != exitOK || !strings.Contains(out, "resumed") {
				t.Fatalf("rerun after a crash at %s exited %d (want 0, resumed):\n%s", point, code, out)
			}
		}
		res := p.Stop()
		t.Logf("prober: %s", res)
		if res.Rejected != 0 {
			t.Errorf("the prober saw %d rejections: %v", res.Rejected, res.Rejections)
		}
		cur := kf.current()
		if cur.Version != 3 {
			t.Errorf("Vault's current key is at version %d, want 3 (two rotations)", cur.Version)
		}
		kf.assertKeys(cur.Key, kf.k1)
		for name, n := range kf.countPoints(cur.Key) {
			if n != 10 {
				t.Errorf("pod %s has %d points, want 10", name, n)
			}
		}
		if s, g := kf.statefulSet(); s != spec || g != gen {
			t.Errorf("the StatefulSet changed (generation %d -> %d)", gen, g)
		}
		kf.assertNoLeak(cur.Key)
	})
	t.Run("NeverReady", func(t *testing.T) {
		t.Parallel()
		kf := newKubeFixture(t, kubeOpts{layout: "local.yaml", readyTimeout: "20s",
			env: []corev1.EnvVar{{Name: "STANDIN_FAIL_IF_SET", Value: "service.alt_api_key"}}})
		p := kf.startProber()
		code, out := kf.rotator("rotate")
		res := p.Stop()
		if code != exitRolledBack {
			t.Fatalf("rotate exited %d, want %d (rolled back):\n%s", code, exitRolledBack, out)
		}
		if !strings.Contains(out, "qdrant-0") || !strings.Contains(out, "CrashLoopBackOff") && !strings.Contains(out, "exit code 3") {
			t.Errorf("the rotator does not say which pod failed and why:\n%s", out)
		}
		if res.Rejected != 0 {
			t.Errorf("the prober saw %d rejections: %v", res.Rejected, res.Rejections)
		}
		if cur := kf.current(); !cur.Key.Equal(kf.k1) {
			t.Errorf("Vault's current key changed although the rotation rolled back")
		}
		kf.waitReady()
		kf.assertKeys(kf.k1)
		kf.assertNoLeak()
	})
	t.Run("UnreadableLocalYAML", func(t *testing.T) {
		t.Parallel()
		// The operator's StatefulSet mounts local.yaml 0400 with no fsGroup: the pods' user (1000) cannot read it, so
		// Qdrant starts with no key and serves everyone. The rotator refuses to touch it and says why.
		kf := newKubeFixture(t, kubeOpts{layout: "local.yaml", unreadableConfig: true})
		before, err := kf.cs.CoreV1().Secrets(kf.ns).Get(context.Background(), kubeSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w := kf.watchPods()
		code, out := kf.rotator("rotate")
		replaced := w.Stop()
		if code == exitOK || !strings.Contains(out, "cannot be read by the container's user 1000") {
			t.Fatalf("rotate exited %d; want a refusal naming the unreadable file:\n%s", code, out)
		}
		after, err := kf.cs.CoreV1().Secrets(kf.ns).Get(context.Background(), kubeSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(replaced) != 0 || after.ResourceVersion != before.ResourceVersion {
			t.Errorf("the rotator changed something: pods replaced %v, Secret written %v", replaced, after.ResourceVersion != before.ResourceVersion)
		}
		if cur := kf.current(); !cur.Key.Equal(kf.k1) || cur.Version != 1 {
			t.Errorf("Vault's key changed")
		}
		kf.assertNoLeak()
	})
	t.Run("BudgetForbidsEvictions", func(t *testing.T) {
		t.Parallel()
		zero := 0
		kf := newKubeFixture(t, kubeOpts{layout: "local.yaml", pdb: &zero, readyTimeout: "5s"})
		before, err := kf.cs.CoreV1().Secrets(kf.ns).Get(context.Background(), kubeSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w := kf.watchPods()
		code, out := kf.rotator("rotate")
		replaced := w.Stop()
		if code != exitRolledBack {
			t.Fatalf("rotate exited %d, want %d:\n%s", code, exitRolledBack, out)
		}
		if !strings.Contains(out, "disruption budget") {
			t.Errorf("the rotator does not report the disruption budget:\n%s", out)
		}
		if len(replaced) != 0 {
			t.Errorf("pods were restarted despite the budget: %v", replaced)
		}
		after, err := kf.cs.CoreV1().Secrets(kf.ns).Get(context.Background(), kubeSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if after.ResourceVersion != before.ResourceVersion {
			t.Errorf("the Secret was written although no pod could be evicted")
		}
		kf.assertKeys(kf.k1)
		kf.assertNoLeak()
	})
}

// TestKubernetesRotatorIdentity rotates with the identity deploy/kubernetes gives the rotator, nothing more: Vault's
// Kubernetes auth method is set up by deploy/kubernetes/vault/kubernetes-auth.sh against the test cluster's API
// server (a reviewer token from token-reviewer.yaml), and the rotator logs in with the projected ServiceAccount token
// (audience vault) that the kubelet wrote for a pod of the rotator's Deployment (deployment.yaml, its image swapped
// for a pause image: the pod is there for its token); Vault checks it with a TokenReview. It calls the Kubernetes
// API as the ServiceAccount qdrant-rotator, with only role.yaml's permissions.
func TestKubernetesRotatorIdentity(t *testing.T) {
	t.Parallel() // the Kubernetes tests wait on pods more than they compute: they run together, after the others
	ctx := context.Background()
	kf := newKubeFixture(t, kubeOpts{layout: "local.yaml"})
	rotNS := kf.ns + "-rotator"
	if _, err := kf.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rotNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { (&kubeFixture{fixture: kf.fixture, cs: kf.cs, ns: rotNS}).deleteNamespace(t) })
	t.Cleanup(func() {
		_ = kf.cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), "qdrant-rotator-vault-token-reviewer", metav1.DeleteOptions{})
	})
	// The kit's manifests, in this test's namespaces.
	var kit []byte
	for _, file := range []string{"rotator/serviceaccount.yaml", "rotator/role.yaml", "rotator/rolebinding.yaml", "rotator/configmap.yaml", "vault/token-reviewer.yaml"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", file))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(raw), "namespace: qdrant-rotator", "namespace: "+rotNS)
		s = strings.ReplaceAll(s, "namespace: qdrant\n", "namespace: "+kf.ns+"\n")
		kit = append(kit, "---\n"+s+"\n"...)
	}
	kf.applyAll(kit)
	pause, err := k8s.PauseImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "rotator", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	if err := yaml.UnmarshalStrict(raw, &dep); err != nil {
		t.Fatal(err)
	}
	dep.Namespace = rotNS
	c := &dep.Spec.Template.Spec.Containers[0]
	c.Image, c.ImagePullPolicy, c.Args, c.Command, c.ReadinessProbe, c.LivenessProbe = pause, corev1.PullNever, nil, nil, nil, nil
	out, err := yaml.Marshal(&dep)
	if err != nil {
		t.Fatal(err)
	}
	kf.applyAll(out)

	// The reviewer token the token controller put in token-reviewer.yaml's Secret.
	var reviewer []byte
	wait.UntilEvery(t, "the token controller to fill the reviewer's Secret", time.Minute, 500*time.Millisecond, func() (bool, error) {
		s, err := kf.cs.CoreV1().Secrets(rotNS).Get(ctx, "vault-token-reviewer", metav1.GetOptions{})
		if err == nil {
			reviewer = s.Data["token"]
		}
		return len(reviewer) > 0, nil
	})
	dir := t.TempDir()
	reviewerFile := filepath.Join(dir, "reviewer.jwt")
	if err := os.WriteFile(reviewerFile, reviewer, 0o600); err != nil {
		t.Fatal(err)
	}
	script := exec.Command("bash", filepath.Join("..", "..", "deploy", "kubernetes", "vault", "kubernetes-auth.sh"),
		"--kubernetes-host", kf.c.Server, "--kubernetes-ca-cert", kf.c.CAFile, "--reviewer-jwt-file", reviewerFile, "--namespace", rotNS)
	script.Env = append(os.Environ(), "VAULT_ADDR="+kf.vault.Addr, "VAULT_TOKEN="+kf.vault.Token,
		"PATH="+filepath.Dir(os.Getenv("VAULT_BIN"))+":"+os.Getenv("PATH"))
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("kubernetes-auth.sh: %v\n%s", err, out)
	}

	// The projected token the kubelet wrote for the rotator's pod.
	var jwtFile string
	wait.UntilEvery(t, "the rotator's pod and its projected Vault token", 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		pods, err := kf.cs.CoreV1().Pods(rotNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=qdrant-rotator"})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning {
			return false, nil
		}
		jwtFile = filepath.Join(kf.c.Dir(), "kubelet", "pods", string(pods.Items[0].UID), "volumes", "kubernetes.io~projected", "vault-token", "token")
		_, err = os.Stat(jwtFile)
		return err == nil, nil
	})

	// The rotator's own API identity: a token of its ServiceAccount (audience: the API server).
	tok, err := kf.cs.CoreV1().ServiceAccounts(rotNS).CreateToken(ctx, "qdrant-rotator", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "rotator.kubeconfig")
	ca, err := os.ReadFile(kf.c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %s, certificate-authority-data: %s}}]
users: [{name: rotator, user: {token: %s}}]
contexts: [{name: rotator, context: {cluster: test, user: rotator}}]
current-context: rotator
`, kf.c.Server, base64.StdEncoding.EncodeToString(ca), tok.Status.Token)
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(kf.config)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(cfg), "  token_file: token\n", "  kubernetes: {role: qdrant-rotator, jwt_file: "+jwtFile+"}\n", 1)
	s = strings.Replace(s, "kubeconfig: "+kf.c.Kubeconfig, "kubeconfig: "+kubeconfig, 1)
	if err := os.WriteFile(kf.config, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	cur, _ := kf.rotateUnderProbe(10)
	kf.assertNoLeak(cur.Key)
}

// applyAll runs `kubectl apply` with manifests that name their namespaces.
func (kf *kubeFixture) applyAll(manifests []byte) {
	kf.t.Helper()
	cmd := exec.Command(filepath.Join(kf.c.BinDir, "kubectl"), "--kubeconfig", kf.c.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = bytes.NewReader(manifests)
	if out, err := cmd.CombinedOutput(); err != nil {
		kf.t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestKubernetesClusterRotation rotates 3 stand-in Qdrant peers in the pods of a StatefulSet, with
// enforce_internal_auth (3 restarts per pod) and a collection of replication factor 2, while a client that follows
// Vault's consumer path writes and reads through every pod: no call is refused, the cluster's leader is restarted
// after its followers in every pass, and every acknowledged point is on every pod afterwards.
func TestKubernetesClusterRotation(t *testing.T) {
	t.Parallel() // the Kubernetes tests wait on pods more than they compute: they run together, after the others
	kf := newKubeFixture(t, kubeOpts{layout: "local.yaml", cluster: true})
	kf.setupCollection(2)
	c := kf.startClusterClient()
	code, out := kf.rotator("rotate")
	c.Stop()
	if code != exitOK {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	c.mu.Lock()
	acked, requests, rejections := slices.Clone(c.acked), c.requests, c.rejections
	c.mu.Unlock()
	t.Logf("client: %d requests, %d acknowledged writes, %d rejections", requests, len(acked), len(rejections))
	if len(rejections) != 0 {
		t.Errorf("rejections: %v", rejections)
	}
	var order []string
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		if !strings.Contains(line, "restarting:") {
			continue
		}
		for _, name := range kf.names {
			if strings.Contains(line, " "+name+" ") || strings.Contains(line, " "+name+":") {
				order = append(order, name)
			}
		}
		// The last of each pass of 3 is the leader of that moment, announced as such.
		if n := strings.Count(strings.Join(lines[:i+1], "\n"), "restarting:"); n%3 == 0 && (i == 0 || !strings.Contains(lines[i-1], "the cluster's leader")) {
			t.Errorf("restart %d (the last of its pass) was not announced as the leader's:\n%s", n, out)
		}
	}
	t.Logf("pods restarted in order %v", order)
	if len(order) != 9 {
		t.Errorf("%d restarts, want 9 (3 per pod with enforce_internal_auth): %v", len(order), order)
	}
	cur := kf.current()
	kf.waitActive(cur.Key, time.Minute)
	kf.assertPointsEverywhere(cur.Key, acked)
	kf.assertKeys(cur.Key, kf.k1)
	kf.assertNoLeak(cur.Key)
}
