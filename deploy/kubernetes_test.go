package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/qdrantrotator/rotator/config"
)

// The names the manifests under kubernetes/ share, in one place: every test below checks the manifests against these.
const (
	k8sNamespace      = "qdrant"
	k8sStatefulSet    = "qdrant"
	k8sHeadless       = "qdrant-headless"
	k8sSecret         = "qdrant-apikey"
	k8sRotatorNS      = "qdrant-rotator"
	k8sRotator        = "qdrant-rotator" // service account, Role, RoleBinding, Deployment, ConfigMap
	k8sVaultTokenPath = "/var/run/secrets/vault/token"
)

var k8sQdrantLabels = map[string]string{"app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": "qdrant"}

// k8sManifest is one object of a manifest file, decoded into its typed struct.
type k8sManifest struct {
	file string
	obj  runtime.Object
}

// k8sManifests decodes every document of every YAML file under kubernetes/ with client-go's scheme, strictly: an
// unknown or duplicate field anywhere fails the test.
func k8sManifests(t *testing.T) []k8sManifest {
	t.Helper()
	var files []string
	err := filepath.WalkDir("kubernetes", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []k8sManifest
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := yamlDocuments(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, doc := range docs {
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
				continue
			}
			out = append(out, k8sManifest{file: filepath.ToSlash(f), obj: obj})
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// yamlDocuments splits a multi-document YAML file, leaving out documents that hold only comments.
func yamlDocuments(b []byte) ([][]byte, error) {
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if body := strings.TrimSpace(stripComments(string(doc))); body != "" && body != "---" {
			docs = append(docs, doc)
		}
	}
}

// strictYAML decodes YAML into the scheme's typed objects and fails on unknown and duplicate fields.
var strictYAML = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// decodeStrict decodes one document with client-go's UniversalDeserializer (the kind must be known to the scheme),
// then again strictly.
func decodeStrict(doc []byte) (runtime.Object, error) {
	obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
	if err != nil {
		return nil, err
	}
	strict, _, err := strictYAML.Decode(doc, gvk, nil)
	if err != nil {
		return nil, err
	}
	if !apiequality.Semantic.DeepEqual(obj, strict) {
		return nil, errors.New("the strict decode differs from the universal one")
	}
	return strict, nil
}

// k8sFind returns the one object of type T named name (in file, if given), failing the test otherwise.
func k8sFind[T runtime.Object](t *testing.T, ms []k8sManifest, file, name string) T {
	t.Helper()
	var found []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok && (file == "" || m.file == file) {
			if meta, err := metaOf(m.obj); err == nil && meta.GetName() == name {
				found = append(found, o)
			}
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T named %s (file %q), found %d", zero, name, file, len(found))
	}
	return found[0]
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, errors.New("no object metadata")
	}
	return m, nil
}

func TestKubernetesStrictDecoderRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	// The check below is only worth its name if a typo fails it.
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replica: 3}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringdata: {a: b}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ntype: Opaque\ntype: Opaque\n",
		"apiVersion: v1\nkind: Secrett\nmetadata: {name: x}\n",
	} {
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("decodeStrict accepted:\n%s", doc)
		}
	}
}

func TestKubernetesManifestsDecode(t *testing.T) {
	t.Parallel()
	ms := k8sManifests(t)
	want := map[string][]string{ // file -> kinds, in order
		"kubernetes/qdrant/namespace.yaml":        {"Namespace"},
		"kubernetes/qdrant/service-headless.yaml": {"Service"},
		"kubernetes/qdrant/statefulset.yaml":      {"StatefulSet"},
		"kubernetes/qdrant/statefulset-env.yaml":  {"StatefulSet"},
		"kubernetes/qdrant/secret.yaml":           {"Secret"},
		"kubernetes/qdrant/pdb.yaml":              {"PodDisruptionBudget"},
		"kubernetes/rotator/namespace.yaml":       {"Namespace"},
		"kubernetes/rotator/serviceaccount.yaml":  {"ServiceAccount"},
		"kubernetes/rotator/role.yaml":            {"Role"},
		"kubernetes/rotator/rolebinding.yaml":     {"RoleBinding"},
		"kubernetes/rotator/deployment.yaml":      {"Deployment"},
		"kubernetes/rotator/configmap.yaml":       {"ConfigMap"},
		"kubernetes/rotator/networkpolicy.yaml":   {"NetworkPolicy", "NetworkPolicy"},
		"kubernetes/vault/token-reviewer.yaml":    {"ServiceAccount", "ClusterRoleBinding", "Secret"},
	}
	got := map[string][]string{}
	for _, m := range ms {
		kinds, _, err := scheme.Scheme.ObjectKinds(m.obj)
		if err != nil {
			t.Fatal(err)
		}
		got[m.file] = append(got[m.file], kinds[0].Kind)
		meta, err := metaOf(m.obj)
		if err != nil {
			t.Fatalf("%s: %v", m.file, err)
		}
		// Every namespaced object names its namespace: qdrant for Qdrant's side (and the rotator's Role there),
		// qdrant-rotator for the rotator's own objects.
		wantNS := k8sRotatorNS
		switch {
		case kinds[0].Kind == "Namespace" || kinds[0].Kind == "ClusterRoleBinding":
			wantNS = ""
		case strings.HasPrefix(m.file, "kubernetes/qdrant/"), kinds[0].Kind == "Role", kinds[0].Kind == "RoleBinding",
			m.file == "kubernetes/rotator/networkpolicy.yaml" && meta.GetName() == "qdrant":
			wantNS = k8sNamespace
		}
		if meta.GetNamespace() != wantNS {
			t.Errorf("%s: %s %s: namespace %q, want %q", m.file, kinds[0].Kind, meta.GetName(), meta.GetNamespace(), wantNS)
		}
		if strings.HasPrefix(m.file, "kubernetes/qdrant/") && kinds[0].Kind != "Namespace" {
			for k, v := range k8sQdrantLabels {
				if meta.GetLabels()[k] != v {
					t.Errorf("%s: %s %s lacks label %s=%s", m.file, kinds[0].Kind, meta.GetName(), k, v)
				}
			}
		}
	}
	for f, kinds := range want {
		if !slices.Equal(got[f], kinds) {
			t.Errorf("%s: objects %v, want %v", f, got[f], kinds)
		}
	}
	for f := range got {
		if _, ok := want[f]; !ok {
			t.Errorf("%s: not expected here; add it to this test", f)
		}
	}
	for _, ns := range []string{k8sNamespace, k8sRotatorNS} {
		n := k8sFind[*corev1.Namespace](t, ms, "", ns)
		if n.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("namespace %s: want Pod Security enforce restricted", ns)
		}
	}
}

func TestKubernetesQdrantStatefulSets(t *testing.T) {
	t.Parallel()
	ms := k8sManifests(t)
	local := k8sFind[*appsv1.StatefulSet](t, ms, "kubernetes/qdrant/statefulset.yaml", k8sStatefulSet)
	env := k8sFind[*appsv1.StatefulSet](t, ms, "kubernetes/qdrant/statefulset-env.yaml", k8sStatefulSet)
	svc := k8sFind[*corev1.Service](t, ms, "", k8sHeadless)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses || !equalMaps(svc.Spec.Selector, k8sQdrantLabels) {
		t.Errorf("service %s: want headless, publishing not-ready pods, selecting %v", k8sHeadless, k8sQdrantLabels)
	}
	var svcPorts []int32
	for _, p := range svc.Spec.Ports {
		svcPorts = append(svcPorts, p.Port)
	}
	if !slices.Equal(svcPorts, []int32{6333, 6334, 6335}) {
		t.Errorf("service %s: ports %v, want 6333, 6334, 6335", k8sHeadless, svcPorts)
	}

	for _, sts := range []*appsv1.StatefulSet{local, env} {
		checkChartShape(t, sts)
	}

	// Layout local.yaml: the Secret's key local.yaml, with subPath, at /qdrant/config/local.yaml, readable by
	// group 1000 only; no key variable in the environment (it would override the file).
	c := local.Spec.Template.Spec.Containers[0]
	mount := findMount(c, "/qdrant/config/local.yaml")
	if mount == nil || mount.SubPath != "local.yaml" || !mount.ReadOnly {
		t.Fatalf("statefulset.yaml: want a read-only mount of subPath local.yaml at /qdrant/config/local.yaml, got %+v", mount)
	}
	vol := findVolume(local.Spec.Template.Spec, mount.Name)
	if vol == nil || vol.Secret == nil || vol.Secret.SecretName != k8sSecret {
		t.Fatalf("statefulset.yaml: volume %s: want secret %s", mount.Name, k8sSecret)
	}
	if !is(vol.Secret.DefaultMode, 0o440) {
		t.Errorf("statefulset.yaml: secret volume defaultMode is not 0440 (group 1000 reads it, nobody else)")
	}
	if len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Key != "local.yaml" || vol.Secret.Items[0].Path != "local.yaml" {
		t.Errorf("statefulset.yaml: secret volume items %+v, want just local.yaml -> local.yaml", vol.Secret.Items)
	}
	for _, e := range c.Env {
		if strings.HasPrefix(strings.ToUpper(e.Name), "QDRANT__SERVICE__") {
			t.Errorf("statefulset.yaml: %s in the environment would override local.yaml", e.Name)
		}
	}

	// Layout env: the three variables from the Secret; the alt slot (and the read-only key) optional.
	ec := env.Spec.Template.Spec.Containers[0]
	for _, want := range []struct {
		name, key string
		optional  bool
	}{
		{"QDRANT__SERVICE__API_KEY", "api-key", false},
		{"QDRANT__SERVICE__ALT_API_KEY", "alt-api-key", true},
		{"QDRANT__SERVICE__READ_ONLY_API_KEY", "read-only-api-key", true},
	} {
		i := slices.IndexFunc(ec.Env, func(e corev1.EnvVar) bool { return e.Name == want.name })
		if i < 0 || ec.Env[i].ValueFrom == nil || ec.Env[i].ValueFrom.SecretKeyRef == nil {
			t.Errorf("statefulset-env.yaml: want %s from a secretKeyRef", want.name)
			continue
		}
		ref := ec.Env[i].ValueFrom.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		if ref.Name != k8sSecret || ref.Key != want.key || optional != want.optional {
			t.Errorf("statefulset-env.yaml: %s from secret %s key %s optional %t, want %s key %s optional %t",
				want.name, ref.Name, ref.Key, optional, k8sSecret, want.key, want.optional)
		}
	}
	if m := findMount(ec, "/qdrant/config/local.yaml"); m != nil {
		t.Errorf("statefulset-env.yaml mounts %s at /qdrant/config/local.yaml; layout env takes no file from the Secret", m.Name)
	}

	// Same otherwise: take the keys' way out of both and they must be equal.
	strip := func(sts *appsv1.StatefulSet) *appsv1.StatefulSet {
		s := sts.DeepCopy()
		spec := &s.Spec.Template.Spec
		c := &spec.Containers[0]
		c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return strings.HasPrefix(e.Name, "QDRANT__SERVICE__") })
		c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/qdrant/config/local.yaml" })
		spec.Volumes = slices.DeleteFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil })
		s.Spec.Template.Spec.SecurityContext.FSGroup = nil // compared in checkChartShape
		return s
	}
	if !apiequality.Semantic.DeepEqual(strip(local), strip(env)) {
		t.Errorf("statefulset.yaml and statefulset-env.yaml differ in more than how the keys reach Qdrant")
	}

	pdb := k8sFind[*policyv1.PodDisruptionBudget](t, ms, "", "qdrant")
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil ||
		pdb.Spec.Selector == nil || !equalMaps(pdb.Spec.Selector.MatchLabels, k8sQdrantLabels) {
		t.Errorf("pdb.yaml: want maxUnavailable 1 over %v, got %+v", k8sQdrantLabels, pdb.Spec)
	}
}

// checkChartShape checks what both StatefulSets share with Qdrant's Helm chart.
func checkChartShape(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	f := "statefulset " + sts.Name
	s := sts.Spec
	if s.Replicas == nil || *s.Replicas != 3 || s.PodManagementPolicy != appsv1.ParallelPodManagement ||
		s.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || s.ServiceName != k8sHeadless {
		t.Errorf("%s: want 3 replicas, Parallel, RollingUpdate, serviceName %s", f, k8sHeadless)
	}
	if s.Selector == nil || !equalMaps(s.Selector.MatchLabels, k8sQdrantLabels) || !equalMaps(s.Template.Labels, k8sQdrantLabels) {
		t.Errorf("%s: selector and pod labels must be %v", f, k8sQdrantLabels)
	}
	ps := s.Template.Spec
	if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds != 30 {
		t.Errorf("%s: terminationGracePeriodSeconds %v, want 30", f, ps.TerminationGracePeriodSeconds)
	}
	sc := ps.SecurityContext
	if sc == nil || !is(sc.RunAsUser, 1000) || !is(sc.RunAsGroup, 1000) || !is(sc.FSGroup, 1000) || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: pod securityContext %+v, want runAsUser/runAsGroup/fsGroup 1000, runAsNonRoot", f, sc)
	}
	if len(ps.Containers) != 1 || ps.Containers[0].Name != "qdrant" {
		t.Fatalf("%s: want one container named qdrant", f)
	}
	c := ps.Containers[0]
	if c.Image != "qdrant/qdrant:v1.19.0" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("%s: image %s (%s), want qdrant/qdrant:v1.19.0 IfNotPresent", f, c.Image, c.ImagePullPolicy)
	}
	var ports []int32
	for _, p := range c.Ports {
		ports = append(ports, p.ContainerPort)
	}
	if !slices.Equal(ports, []int32{6333, 6334, 6335}) {
		t.Errorf("%s: container ports %v, want 6333, 6334, 6335", f, ports)
	}
	rp := c.ReadinessProbe
	if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Port.IntValue() != 6333 || rp.PeriodSeconds != 5 {
		t.Errorf("%s: want readiness httpGet /readyz on 6333 every 5 s, got %+v", f, rp)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != 3 ||
		c.Lifecycle.PreStop.Exec != nil {
		t.Errorf("%s: want preStop sleep 3 s (the image has no shell for an exec)", f)
	}
	csc := c.SecurityContext
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil ||
		*csc.AllowPrivilegeEscalation || csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		csc.RunAsNonRoot == nil || !*csc.RunAsNonRoot {
		t.Errorf("%s: container securityContext %+v, want readOnlyRootFilesystem, no privilege escalation, drop ALL, runAsNonRoot", f, csc)
	}
	// A read-only root: every folder Qdrant writes is a volume.
	for path, want := range map[string]string{"/qdrant/storage": "pvc", "/qdrant/snapshots": "emptyDir", "/qdrant/init": "emptyDir", "/tmp": "emptyDir"} {
		m := findMount(c, path)
		if m == nil {
			t.Errorf("%s: nothing mounted at %s", f, path)
			continue
		}
		v := findVolume(ps, m.Name)
		switch {
		case want == "emptyDir" && (v == nil || v.EmptyDir == nil):
			t.Errorf("%s: %s: want an emptyDir", f, path)
		case want == "pvc" && (v != nil || len(s.VolumeClaimTemplates) != 1 || s.VolumeClaimTemplates[0].Name != m.Name):
			t.Errorf("%s: %s: want the volume claim template", f, path)
		}
	}
	for _, m := range c.VolumeMounts {
		if findVolume(ps, m.Name) == nil && !slices.ContainsFunc(s.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == m.Name }) {
			t.Errorf("%s: mount %s has no volume", f, m.Name)
		}
	}
	if len(s.VolumeClaimTemplates) == 1 {
		pvc := s.VolumeClaimTemplates[0].Spec
		if pvc.StorageClassName == nil || *pvc.StorageClassName != "qdrant-storage" || !pvc.Resources.Requests.Storage().Equal(resource.MustParse("1Gi")) ||
			!slices.Equal(pvc.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
			t.Errorf("%s: volume claim template %+v, want 1Gi ReadWriteOnce of class qdrant-storage", f, pvc)
		}
	}
}

func TestKubernetesSecretExample(t *testing.T) {
	t.Parallel()
	ms := k8sManifests(t)
	sec := k8sFind[*corev1.Secret](t, ms, "kubernetes/qdrant/secret.yaml", k8sSecret)
	if len(sec.Data) != 0 || sec.Type != corev1.SecretTypeOpaque {
		t.Errorf("secret.yaml: want an Opaque Secret with stringData only")
	}
	if got := mapKeys(sec.StringData); !slices.Equal(got, []string{"api-key", "local.yaml", "read-only-api-key"}) {
		t.Errorf("secret.yaml: keys %v, want api-key, local.yaml, read-only-api-key (as the chart's)", got)
	}
	for _, k := range []string{"api-key", "read-only-api-key"} {
		if sec.StringData[k] != "REPLACE_ME" {
			t.Errorf("secret.yaml: %s must be the placeholder REPLACE_ME", k)
		}
	}
	var file struct {
		Service map[string]string `yaml:"service"`
	}
	dec := yaml.NewDecoder(strings.NewReader(sec.StringData["local.yaml"]))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("secret.yaml: local.yaml: %v", err)
	}
	if len(file.Service) != 2 || file.Service["api_key"] != "REPLACE_ME" || file.Service["read_only_api_key"] != "REPLACE_ME" {
		t.Errorf("secret.yaml: local.yaml must be service: {api_key, read_only_api_key}, both REPLACE_ME")
	}
	b, err := os.ReadFile("kubernetes/qdrant/secret.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "created ONCE") || !strings.Contains(string(b), "never") {
		t.Errorf("secret.yaml: its header must say the Secret is created once and never re-applied")
	}
}

// rbacGrant is one verb on one resource, with the names it is limited to.
type rbacGrant struct{ group, resource, verb, names string }

func TestKubernetesRotatorRBAC(t *testing.T) {
	t.Parallel()
	ms := k8sManifests(t)
	role := k8sFind[*rbacv1.Role](t, ms, "", k8sRotator)
	var got []rbacGrant
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("role: nonResourceURLs %v", r.NonResourceURLs)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if g == "*" || res == "*" || v == "*" {
						t.Errorf("role: a wildcard (%q %q %q)", g, res, v)
					}
					got = append(got, rbacGrant{g, res, v, strings.Join(r.ResourceNames, ",")})
				}
			}
		}
	}
	// Exactly the calls of qdrantctl/kubernetes.go (a deployment with statefulset:, so no list of pods).
	want := []rbacGrant{
		{"", "secrets", "get", k8sSecret},
		{"", "secrets", "update", k8sSecret},
		{"apps", "statefulsets", "get", k8sStatefulSet},
		{"", "pods", "get", ""},
		{"", "pods", "patch", ""},
		{"", "pods/eviction", "create", ""},
		{"", "pods/log", "get", ""},
		{"", "events", "list", ""},
	}
	sortGrants := func(gs []rbacGrant) {
		sort.Slice(gs, func(i, j int) bool {
			a, b := gs[i], gs[j]
			return a.group+"/"+a.resource+"/"+a.verb < b.group+"/"+b.resource+"/"+b.verb
		})
	}
	sortGrants(got)
	sortGrants(want)
	if !slices.Equal(got, want) {
		t.Errorf("role grants\n  %v\nwant exactly\n  %v", got, want)
	}

	rb := k8sFind[*rbacv1.RoleBinding](t, ms, "", k8sRotator)
	if rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: k8sRotator}) ||
		len(rb.Subjects) != 1 || rb.Subjects[0] != (rbacv1.Subject{Kind: "ServiceAccount", Name: k8sRotator, Namespace: k8sRotatorNS}) {
		t.Errorf("rolebinding: want Role %s for service account %s/%s, got %+v %+v", k8sRotator, k8sRotatorNS, k8sRotator, rb.RoleRef, rb.Subjects)
	}
	sa := k8sFind[*corev1.ServiceAccount](t, ms, "kubernetes/rotator/serviceaccount.yaml", k8sRotator)
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("serviceaccount: want automountServiceAccountToken false (the Deployment asks for it)")
	}
}

func TestKubernetesRotatorDeployment(t *testing.T) {
	t.Parallel()
	ms := k8sManifests(t)
	d := k8sFind[*appsv1.Deployment](t, ms, "", k8sRotator)
	ps := d.Spec.Template.Spec
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || ps.ServiceAccountName != k8sRotator ||
		ps.AutomountServiceAccountToken == nil || !*ps.AutomountServiceAccountToken {
		t.Errorf("deployment: want 1 replica, service account %s, automountServiceAccountToken true", k8sRotator)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("deployment: want one container")
	}
	c := ps.Containers[0]
	if c.Image != "qdrant-rotator:latest" || !slices.Equal(c.Args, []string{"daemon", "--config", "/etc/rotator/rotator.yml"}) || len(c.Command) != 0 {
		t.Errorf("deployment: want qdrant-rotator:latest running daemon --config /etc/rotator/rotator.yml, got %s %v %v", c.Image, c.Command, c.Args)
	}
	sc, csc := ps.SecurityContext, c.SecurityContext
	if sc == nil || !is(sc.RunAsUser, 65532) || csc == nil || !is(csc.RunAsUser, 65532) || csc.ReadOnlyRootFilesystem == nil ||
		!*csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("deployment: want uid 65532, read-only root, no privilege escalation, drop ALL")
	}
	// The Vault token: projected, audience vault, 1 h, at /var/run/secrets/vault/token.
	m := findMount(c, filepath.Dir(k8sVaultTokenPath))
	if m == nil || !m.ReadOnly {
		t.Fatalf("deployment: nothing mounted read-only at %s", filepath.Dir(k8sVaultTokenPath))
	}
	v := findVolume(ps, m.Name)
	if v == nil || v.Projected == nil || len(v.Projected.Sources) != 1 || v.Projected.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("deployment: volume %s: want one projected service account token", m.Name)
	}
	tok := v.Projected.Sources[0].ServiceAccountToken
	if tok.Audience != "vault" || !is(tok.ExpirationSeconds, 3600) || tok.Path != filepath.Base(k8sVaultTokenPath) {
		t.Errorf("deployment: projected token %+v, want audience vault, expirationSeconds 3600, path token", tok)
	}
	cm := findMount(c, "/etc/rotator")
	if cm == nil || findVolume(ps, cm.Name) == nil || findVolume(ps, cm.Name).ConfigMap == nil ||
		findVolume(ps, cm.Name).ConfigMap.Name != k8sRotator {
		t.Errorf("deployment: want ConfigMap %s mounted at /etc/rotator", k8sRotator)
	}

	// Its config parses and validates with the rotator's own config package, and matches the manifests.
	cmap := k8sFind[*corev1.ConfigMap](t, ms, "", k8sRotator)
	cfg, err := config.Parse([]byte(cmap.Data["rotator.yml"]))
	if err != nil {
		t.Fatalf("configmap: rotator.yml: %v", err)
	}
	if k := cfg.Vault.Kubernetes; k == nil || k.Role != "qdrant-rotator" || k.JWTFile != k8sVaultTokenPath {
		t.Errorf("configmap: want vault.kubernetes {role: qdrant-rotator, jwt_file: %s}", k8sVaultTokenPath)
	}
	if len(cfg.Deployments) != 1 || cfg.Deployments[0].Mode != "kubernetes" || cfg.Deployments[0].Kubernetes == nil {
		t.Fatalf("configmap: want one deployment of mode kubernetes")
	}
	dep := cfg.Deployments[0]
	k := *dep.Kubernetes
	if k.Namespace != k8sNamespace || k.StatefulSet != k8sStatefulSet || k.Secret != k8sSecret || k.Layout != config.LayoutLocalYAML ||
		k.ConfigKey != "local.yaml" || k.ConfigPath != "/qdrant/config/local.yaml" || k.Port != 6333 || k.Kubeconfig != "" {
		t.Errorf("configmap: kubernetes %+v does not match the manifests (namespace %s, statefulset %s, secret %s, layout local.yaml, in-cluster)",
			k, k8sNamespace, k8sStatefulSet, k8sSecret)
	}
	sts := k8sFind[*appsv1.StatefulSet](t, ms, "kubernetes/qdrant/statefulset.yaml", k8sStatefulSet)
	if grace := *sts.Spec.Template.Spec.TerminationGracePeriodSeconds; dep.StopTimeout.Std().Seconds() < float64(grace) {
		t.Errorf("configmap: stop_timeout %s is shorter than the pods' terminationGracePeriodSeconds %d", dep.StopTimeout.Std(), grace)
	}
	_, port, err := net.SplitHostPort(cfg.Daemon.Listen)
	if err != nil || len(c.Ports) != 1 || port != strconv.Itoa(int(c.Ports[0].ContainerPort)) {
		t.Errorf("configmap: daemon.listen %s is not the container's port %v", cfg.Daemon.Listen, c.Ports)
	}
}

func TestKubernetesNetworkPolicies(t *testing.T) {
	t.Parallel()
	ms := k8sManifests(t)
	rot := k8sFind[*networkingv1.NetworkPolicy](t, ms, "", k8sRotator)
	if !slices.Equal(rot.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) ||
		rot.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "qdrant-rotator" {
		t.Errorf("networkpolicy %s: want Ingress and Egress for the rotator's pod", k8sRotator)
	}
	if len(rot.Spec.Ingress) != 1 || portsOf(rot.Spec.Ingress[0].Ports) != "TCP/8080" || len(rot.Spec.Ingress[0].From) != 1 ||
		rot.Spec.Ingress[0].From[0].NamespaceSelector == nil || rot.Spec.Ingress[0].From[0].IPBlock != nil {
		t.Errorf("networkpolicy %s: ingress must be its API port 8080 from labelled namespaces only", k8sRotator)
	}
	egress := map[string]bool{}
	for _, e := range rot.Spec.Egress {
		for _, to := range e.To {
			switch {
			case to.PodSelector != nil && equalMaps(to.PodSelector.MatchLabels, k8sQdrantLabels) && to.NamespaceSelector != nil &&
				to.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == k8sNamespace:
				egress["qdrant "+portsOf(e.Ports)] = true
			case to.PodSelector != nil && to.PodSelector.MatchLabels["k8s-app"] == "kube-dns":
				egress["dns "+portsOf(e.Ports)] = true
			case to.IPBlock != nil:
				egress["cidr "+portsOf(e.Ports)] = true
			default:
				t.Errorf("networkpolicy %s: unexpected egress %+v", k8sRotator, to)
			}
		}
	}
	for _, want := range []string{"qdrant TCP/6333", "dns UDP/53,TCP/53", "cidr TCP/443,TCP/6443", "cidr TCP/8200"} {
		if !egress[want] {
			t.Errorf("networkpolicy %s: no egress %s (has %v)", k8sRotator, want, mapKeys(egress))
		}
	}
	if len(egress) != 4 {
		t.Errorf("networkpolicy %s: egress %v, want only the Qdrant pods, DNS, the API server and Vault", k8sRotator, mapKeys(egress))
	}

	q := k8sFind[*networkingv1.NetworkPolicy](t, ms, "", "qdrant")
	if !equalMaps(q.Spec.PodSelector.MatchLabels, k8sQdrantLabels) {
		t.Errorf("networkpolicy qdrant: want the Qdrant pods selected")
	}
	rotatorIn, p2p := false, false
	for _, in := range q.Spec.Ingress {
		switch portsOf(in.Ports) {
		case "TCP/6333,TCP/6334":
			for _, from := range in.From {
				if from.NamespaceSelector != nil && from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == k8sRotatorNS &&
					from.PodSelector != nil && from.PodSelector.MatchLabels["app.kubernetes.io/name"] == "qdrant-rotator" {
					rotatorIn = true
				}
			}
		case "TCP/6335":
			p2p = len(in.From) == 1 && in.From[0].NamespaceSelector == nil && in.From[0].PodSelector != nil &&
				equalMaps(in.From[0].PodSelector.MatchLabels, k8sQdrantLabels)
		default:
			t.Errorf("networkpolicy qdrant: unexpected ingress ports %s", portsOf(in.Ports))
		}
	}
	if !rotatorIn || !p2p {
		t.Errorf("networkpolicy qdrant: want 6333/6334 from the rotator (%t) and 6335 only among the Qdrant pods (%t)", rotatorIn, p2p)
	}
}

func TestKubernetesVaultAuthScript(t *testing.T) {
	t.Parallel()
	script := filepath.Join("kubernetes", "vault", "kubernetes-auth.sh")
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n %s: %v\n%s", script, err, out)
	}
	info, err := os.Stat(script)
	if err != nil || info.Mode()&0o111 == 0 {
		t.Fatalf("%s must exist and be executable: %v", script, err)
	}
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"set -euo pipefail", "token_reviewer_jwt=@", "disable_local_ca_jwt", "audience=", "bound_service_account_names=",
		"bound_service_account_namespaces=", "token_policies=", "ROLE=qdrant-rotator", "NAMESPACE=qdrant-rotator", "AUDIENCE=vault", "TOKEN_TTL=1h"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", script, want)
		}
	}
	// Bad command lines fail (exit 2) with a message naming the problem, before any Vault call.
	pem := filepath.Join(t.TempDir(), "not-a-cert")
	if err := os.WriteFile(pem, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--force"}, "unknown argument --force"},
		{[]string{"--reviewer-jwt-file", pem, "--client-jwt"}, "exclude each other"},
		{[]string{"--reviewer-jwt-file", filepath.Join(t.TempDir(), "missing")}, "cannot read it"},
		{[]string{"--kubernetes-ca-cert", pem}, "not a PEM certificate"},
		{[]string{"--kubernetes-host", "kubernetes.default.svc"}, "want https://"},
		{[]string{"--namespace", "Qdrant_Rotator"}, "--namespace"},
		{[]string{"--audience", "a,b"}, "one audience"},
		{[]string{"--token-ttl", "an hour"}, "--token-ttl"},
		{[]string{"--prefix", ""}, "--prefix must not be empty"},
		{[]string{"--role"}, "needs a value"},
	} {
		cmd := exec.Command(script, tc.args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("kubernetes-auth.sh %s: want exit 2 and %q, got %v:\n%s", strings.Join(tc.args, " "), tc.want, err, out)
		}
	}
}

func findMount(c corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func findVolume(ps corev1.PodSpec, name string) *corev1.Volume {
	for i := range ps.Volumes {
		if ps.Volumes[i].Name == name {
			return &ps.Volumes[i]
		}
	}
	return nil
}

// portsOf writes network policy ports as "TCP/6333,TCP/6334".
func portsOf(ps []networkingv1.NetworkPolicyPort) string {
	var out []string
	for _, p := range ps {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		port := "*"
		if p.Port != nil {
			port = p.Port.String()
		}
		out = append(out, string(proto)+"/"+port)
	}
	return strings.Join(out, ",")
}

// is says a pointer is set to want.
func is[T comparable](p *T, want T) bool { return p != nil && *p == want }
