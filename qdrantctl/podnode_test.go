package qdrantctl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

// fakeKube is a namespace with one Secret, one StatefulSet and its pods; evicting a pod replaces it at once with a
// new UID, as the StatefulSet controller would.
type fakeKube struct {
	mu       sync.Mutex
	sec      kubeSecret
	sts      kubeStatefulSet
	pods     map[string]kubePod
	blocked  bool // a PodDisruptionBudget forbids every eviction
	evicted  []string
	writes   int
	nextUID  int
	versions int
}

func newFakeKube(sts kubeStatefulSet, data map[string][]byte) *fakeKube {
	f := &fakeKube{sts: sts, sec: kubeSecret{name: "qdrant-apikey", version: "1", data: data}, pods: map[string]kubePod{}}
	for i := range sts.replicas {
		f.nextUID++
		f.pods[fmt.Sprintf("qdrant-%d", i)] = kubePod{uid: fmt.Sprint(f.nextUID), ip: "10.0.0.1", phase: "Running", running: true, ready: true}
	}
	return f
}

func (f *fakeKube) secret(_ context.Context, name string) (kubeSecret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name != f.sec.name {
		return kubeSecret{}, errKubeNotFound
	}
	s := f.sec
	s.data, s.annotations = maps.Clone(s.data), maps.Clone(s.annotations)
	return s, nil
}

func (f *fakeKube) updateSecret(_ context.Context, s kubeSecret) (kubeSecret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.version != f.sec.version {
		return kubeSecret{}, errKubeConflict
	}
	f.versions++
	f.writes++
	s.version = fmt.Sprint(100 + f.versions)
	f.sec = s
	return s, nil
}

func (f *fakeKube) statefulSet(_ context.Context, name string) (kubeStatefulSet, error) {
	if name != f.sts.name {
		return kubeStatefulSet{}, errKubeNotFound
	}
	return f.sts, nil
}

func (f *fakeKube) pod(_ context.Context, name string) (kubePod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[name]
	if !ok {
		return kubePod{}, errKubeNotFound
	}
	return p, nil
}

func (f *fakeKube) evict(_ context.Context, pod string, dryRun bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked {
		return fmt.Errorf("%w: Cannot evict pod as it would violate the pod's disruption budget", errEvictionBlocked)
	}
	if !dryRun {
		f.evicted = append(f.evicted, pod)
		f.nextUID++
		f.pods[pod] = kubePod{uid: fmt.Sprint(f.nextUID), ip: "10.0.0.2", phase: "Running", running: true, ready: true}
	}
	return nil
}

func (f *fakeKube) annotatePod(_ context.Context, pod, uid, key, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pods[pod]
	if p.uid != uid {
		return errKubeConflict
	}
	p.annotations = map[string]string{key: value}
	f.pods[pod] = p
	return nil
}

func (f *fakeKube) podLog(context.Context, string, string, int, bool) (string, error) { return "", nil }
func (f *fakeKube) podEvents(context.Context, string) ([]string, error)               { return nil, nil }

// chartStatefulSet is a StatefulSet shaped like Qdrant's Helm chart's: local.yaml from the Secret by subPath.
func chartStatefulSet(replicas int) kubeStatefulSet {
	return kubeStatefulSet{name: "qdrant", replicas: replicas, containers: []kubeContainer{{name: "qdrant",
		mounts: []kubeMount{{path: "/qdrant/config/local.yaml", subPath: "local.yaml", secret: "qdrant-apikey", key: "local.yaml"}}}}}
}

// envStatefulSet takes the keys from the Secret through secretKeyRef.
func envStatefulSet(altOptional bool) kubeStatefulSet {
	return kubeStatefulSet{name: "qdrant", replicas: 2, containers: []kubeContainer{{name: "qdrant", env: []kubeEnv{
		{name: envAPIKey, secret: "qdrant-apikey", key: "api-key"},
		{name: envAltAPIKey, secret: "qdrant-apikey", key: "alt-api-key", optional: altOptional},
	}}}}
}

func testKey(t *testing.T) rotation.Key {
	t.Helper()
	k, err := rotation.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func podNodeOf(t *testing.T, f *fakeKube, layout, pod string) *PodNode {
	t.Helper()
	opt := PodOptions{Pod: pod, StatefulSet: "qdrant", Secret: "qdrant-apikey", Layout: layout}
	if layout == LayoutLocalYAML {
		opt.ConfigKey, opt.ConfigPath = "local.yaml", "/qdrant/config/local.yaml"
	}
	n, err := newPodNode(nil, f, opt)
	if err != nil {
		t.Fatal(err)
	}
	n.poll = 0
	return n
}

func TestPodNodeWritesLocalYAMLAndKeepsTheChartKeysInStep(t *testing.T) {
	ctx := context.Background()
	k1, k2, ro := testKey(t), testKey(t), testKey(t)
	file := "# written by hand\nservice:\n  api_key: " + k1.Reveal() + "\n  read_only_api_key: " + ro.Reveal() + "\nstorage:\n  on_disk_payload: true\n"
	f := newFakeKube(chartStatefulSet(2), map[string][]byte{"local.yaml": []byte(file), "api-key": []byte(k1.Reveal()), "read-only-api-key": []byte(ro.Reveal())})
	n0, n1 := podNodeOf(t, f, LayoutLocalYAML, "qdrant-0"), podNodeOf(t, f, LayoutLocalYAML, "qdrant-1")

	s, err := n0.Keys(ctx)
	if err != nil || !s.Equal(rotation.Slots{APIKey: k1, ReadOnlyKey: ro}) || s.Unloaded {
		t.Fatalf("Keys of a Secret the rotator never wrote: %v, equal %v, unloaded %v", err, s.Equal(rotation.Slots{APIKey: k1, ReadOnlyKey: ro}), s.Unloaded)
	}
	staged := rotation.Slots{APIKey: k1, AltAPIKey: k2, ReadOnlyKey: ro}
	if err := n0.Apply(ctx, staged); err != nil {
		t.Fatal(err)
	}
	got := string(f.sec.data["local.yaml"])
	if !strings.Contains(got, "# written by hand") || !strings.Contains(got, "on_disk_payload: true") || !strings.Contains(got, "alt_api_key: "+k2.Reveal()) {
		t.Errorf("local.yaml lost the operator's lines or lacks the alt key")
	}
	if string(f.sec.data["api-key"]) != k1.Reveal() || string(f.sec.data["read-only-api-key"]) != ro.Reveal() {
		t.Errorf("api-key and read-only-api-key no longer match the file's slots")
	}
	if len(f.evicted) != 1 || f.evicted[0] != "qdrant-0" {
		t.Errorf("evicted %v, want qdrant-0 only", f.evicted)
	}
	// The restarted pod has loaded the change; the other still runs with what the Secret held before.
	if s, _ := n0.Keys(ctx); !s.Equal(staged) || s.Unloaded {
		t.Errorf("the restarted pod: equal %v, unloaded %v; want equal and loaded", s.Equal(staged), s.Unloaded)
	}
	if s, _ := n1.Keys(ctx); !s.Equal(staged) || !s.Unloaded {
		t.Errorf("the pod not restarted: equal %v, unloaded %v; want the Secret's slots, unloaded", s.Equal(staged), s.Unloaded)
	}
	if err := n1.Apply(ctx, staged); err != nil { // same slots: no write, still a restart
		t.Fatal(err)
	}
	if f.writes != 1 || len(f.evicted) != 2 {
		t.Errorf("writes %d, evictions %d; want 1 and 2", f.writes, len(f.evicted))
	}
	if s, _ := n1.Keys(ctx); s.Unloaded {
		t.Errorf("the second pod is unloaded after its restart")
	}
	promoted := rotation.Slots{APIKey: k2, ReadOnlyKey: ro}
	if err := n0.Apply(ctx, promoted); err != nil {
		t.Fatal(err)
	}
	if string(f.sec.data["api-key"]) != k2.Reveal() || strings.Contains(string(f.sec.data["local.yaml"]), k1.Reveal()) {
		t.Errorf("after promotion the Secret still holds the old key, or api-key is not the new one")
	}
}

func TestPodNodeLeavesTheSecretAloneWhenABudgetBlocks(t *testing.T) {
	ctx := context.Background()
	k1, k2 := testKey(t), testKey(t)
	f := newFakeKube(chartStatefulSet(1), map[string][]byte{"local.yaml": []byte("service:\n  api_key: " + k1.Reveal() + "\n")})
	f.blocked = true
	n := podNodeOf(t, f, LayoutLocalYAML, "qdrant-0")
	n.opt.ReplaceTimeout = 1 // one try
	err := n.Apply(ctx, rotation.Slots{APIKey: k1, AltAPIKey: k2})
	if !errors.Is(err, errEvictionBlocked) || !strings.Contains(err.Error(), "disruption budget") || !strings.Contains(err.Error(), "qdrant-0") {
		t.Fatalf("Apply under a budget that blocks: %v; want the eviction refusal naming the pod", err)
	}
	if f.writes != 0 || len(f.evicted) != 0 {
		t.Errorf("writes %d, evictions %d; want none", f.writes, len(f.evicted))
	}
	if strings.Contains(err.Error(), k1.Reveal()) || strings.Contains(err.Error(), k2.Reveal()) {
		t.Errorf("the error holds a key")
	}
}

func TestPodNodeEnvLayoutRemovesAnEmptyAltSlot(t *testing.T) {
	ctx := context.Background()
	k1, k2 := testKey(t), testKey(t)
	f := newFakeKube(envStatefulSet(true), map[string][]byte{"api-key": []byte(k1.Reveal())})
	n := podNodeOf(t, f, LayoutEnv, "qdrant-0")
	if err := n.Apply(ctx, rotation.Slots{APIKey: k1, AltAPIKey: k2}); err != nil {
		t.Fatal(err)
	}
	if string(f.sec.data["alt-api-key"]) != k2.Reveal() {
		t.Errorf("alt-api-key is not the staged key")
	}
	if err := n.Apply(ctx, rotation.Slots{APIKey: k2}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.sec.data["alt-api-key"]; ok || string(f.sec.data["api-key"]) != k2.Reveal() {
		t.Errorf("after promotion alt-api-key is still there (present %v), or api-key is not the new key", ok)
	}
	if s, err := n.Keys(ctx); err != nil || !s.Equal(rotation.Slots{APIKey: k2}) {
		t.Errorf("Keys: %v, equal %v", err, s.Equal(rotation.Slots{APIKey: k2}))
	}
}

func TestPodNodeRefusesStatefulSetsItCannotRotate(t *testing.T) {
	ctx := context.Background()
	literal := envStatefulSet(true)
	literal.containers[0].env[0] = kubeEnv{name: envAPIKey, value: "typed-into-the-manifest"}
	noAlt := envStatefulSet(true)
	noAlt.containers[0].env = noAlt.containers[0].env[:1]
	otherMount := chartStatefulSet(1)
	otherMount.containers[0].mounts[0].secret = "another"
	unreadable := chartStatefulSet(1)
	uid := int64(1000)
	unreadable.containers[0].runAsUser = &uid
	unreadable.containers[0].mounts[0].mode = 0o400
	envOverrides := chartStatefulSet(1)
	envOverrides.containers[0].env = []kubeEnv{{name: "qdrant__service__api_key", value: "x"}}
	for _, c := range []struct {
		name, layout string
		sts          kubeStatefulSet
		want         string
	}{
		{"a literal key", LayoutEnv, literal, "QDRANT__SERVICE__API_KEY is not from secret qdrant-apikey"},
		{"no alt variable", LayoutEnv, noAlt, "no QDRANT__SERVICE__ALT_API_KEY"},
		{"a required alt variable", LayoutEnv, envStatefulSet(false), "must be optional: true"},
		{"another secret mounted", LayoutLocalYAML, otherMount, "mounts something else than key local.yaml of secret qdrant-apikey"},
		{"no mount", LayoutLocalYAML, kubeStatefulSet{name: "qdrant", replicas: 1, containers: []kubeContainer{{name: "qdrant"}}}, "does not mount key local.yaml"},
		{"an env key beside the file", LayoutLocalYAML, envOverrides, "overrides /qdrant/config/local.yaml"},
		{"a file its user cannot read", LayoutLocalYAML, unreadable, "(mode 0400, owner root:root) cannot be read by the container's user 1000, and Qdrant would then start with no API key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeKube(c.sts, map[string][]byte{})
			_, err := podNodeOf(t, f, c.layout, "qdrant-0").Keys(ctx)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "statefulset qdrant") {
				t.Errorf("Keys: %v; want an error containing %q and naming the statefulset", err, c.want)
			}
		})
	}
}

func TestPodDown(t *testing.T) {
	for _, c := range []struct {
		pod  kubePod
		down bool
	}{
		{kubePod{phase: "Running", running: true}, false},
		{kubePod{phase: "Pending", waiting: "ContainerCreating"}, false},
		{kubePod{phase: "Running", waiting: "CrashLoopBackOff"}, true},
		{kubePod{phase: "Pending", waiting: "ErrImageNeverPull"}, true},
		{kubePod{phase: "Pending", waiting: "CreateContainerConfigError"}, true},
		{kubePod{phase: "Running", exited: "Error, exit code 1"}, true},
		{kubePod{phase: "Failed"}, true},
	} {
		if got := c.pod.down(); got != c.down {
			t.Errorf("%+v: down %v, want %v", c.pod, got, c.down)
		}
	}
}

func TestPodNodeSecretFileReadableByItsUser(t *testing.T) {
	uid, root, group := int64(1000), int64(0), int64(1000)
	for _, c := range []struct {
		name     string
		user     *int64
		mode     int32
		fsGroup  *int64
		readable bool
	}{
		{"the image's user", nil, 0o400, nil, true},
		{"root", &root, 0o400, nil, true},
		{"readable by all", &uid, 0o644, nil, true},
		{"fsGroup", &uid, 0o400, &group, true},
		{"uid 1000, 0400, no fsGroup", &uid, 0o400, nil, false},
		{"uid 1000, 0440, no fsGroup", &uid, 0o440, nil, false},
	} {
		sts := chartStatefulSet(1)
		sts.fsGroup = c.fsGroup
		sts.containers[0].runAsUser = c.user
		sts.containers[0].mounts[0].mode = c.mode
		err := readableInPod(sts.containers[0], sts, sts.containers[0].mounts[0], "statefulset qdrant")
		if (err == nil) != c.readable {
			t.Errorf("%s: %v, want readable %v", c.name, err, c.readable)
		}
	}
}
