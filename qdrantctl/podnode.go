package qdrantctl

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// kubeAPI is what a pod node needs of the Kubernetes API, in one namespace. kubernetes.go implements it with
// client-go; the unit tests with a fake.
type kubeAPI interface {
	secret(ctx context.Context, name string) (kubeSecret, error)
	// updateSecret writes s; it fails with errKubeConflict when s.version is no longer the Secret's.
	updateSecret(ctx context.Context, s kubeSecret) (kubeSecret, error)
	statefulSet(ctx context.Context, name string) (kubeStatefulSet, error)
	// pod returns a pod, or an error wrapping errKubeNotFound.
	pod(ctx context.Context, name string) (kubePod, error)
	// evict asks the Eviction API to evict a pod, honouring its PodDisruptionBudgets; a refusal wraps
	// errEvictionBlocked. dryRun only asks whether it would be allowed.
	evict(ctx context.Context, pod string, dryRun bool) error
	// annotatePod sets one annotation on the pod of that UID (and fails on another pod of the same name).
	annotatePod(ctx context.Context, pod, uid, key, value string) error
	// podLog returns the last lines of a container's log (previous: of its last terminated run).
	podLog(ctx context.Context, pod, container string, lines int, previous bool) (string, error)
	// podEvents returns the messages of the pod's recent warning events, oldest first.
	podEvents(ctx context.Context, pod string) ([]string, error)
}

// Errors of kubeAPI.
var (
	errKubeNotFound    = errors.New("not found")
	errKubeConflict    = errors.New("changed by someone else since it was read")
	errEvictionBlocked = errors.New("eviction refused")
)

// kubeSecret is a Secret's data, annotations and resourceVersion.
type kubeSecret struct {
	name, version string
	data          map[string][]byte
	annotations   map[string]string
}

// kubeStatefulSet is what the rotator reads of a StatefulSet.
type kubeStatefulSet struct {
	name       string
	replicas   int
	containers []kubeContainer // of the pod template
	// fsGroup is the pod template's securityContext.fsGroup (nil: unset).
	fsGroup *int64
}

// kubeContainer is a container of a pod template: its environment, mounts and the user it runs as (the pod's
// securityContext when the container's leaves it out; nil: the image's user).
type kubeContainer struct {
	name             string
	env              []kubeEnv
	mounts           []kubeMount
	runAsUser, group *int64
}

// kubeEnv is one environment variable: a literal value, or a secretKeyRef (secret, key, optional); from is set
// when the value comes from anything else (a ConfigMap, a field).
type kubeEnv struct {
	name, value string
	secret, key string
	optional    bool
	from        string
}

// kubeMount is a volume mount; secret and key are set when it mounts one key of a Secret (subPath, through the
// volume's items when it lists them).
type kubeMount struct {
	path, subPath string
	secret, key   string
	// mode is the file mode the volume gives the key (its item's mode, else the volume's defaultMode, else 0644).
	mode int32
}

// kubePod is what the rotator reads of a pod and its Qdrant container.
type kubePod struct {
	uid, ip     string
	deleting    bool
	phase       string
	ready       bool
	annotations map[string]string
	// Of the Qdrant container: running, or waiting or terminated with a reason; restarts counts its restarts.
	running         bool
	waiting, exited string
	message         string
	restarts        int
	lastExit        string
}

// configAnnotation marks, on the Secret, each change the rotator makes to it, and on a pod, the change it last
// restarted the pod with: a pod whose mark differs from the Secret's may run with what the Secret held before.
const configAnnotation = "qdrant-rotator.io/config-change"

// Layouts of a pod node's keys.
const (
	// LayoutLocalYAML: a Qdrant config file in the Secret, mounted with subPath (Qdrant's Helm chart).
	LayoutLocalYAML = "local.yaml"
	// LayoutEnv: QDRANT__SERVICE__*API_KEY variables from secretKeyRef.
	LayoutEnv = "env"
)

// PodOptions configure one pod of a StatefulSet.
type PodOptions struct {
	Pod, StatefulSet string
	// Container is the Qdrant container ("": the one named qdrant, or the only one).
	Container string
	Secret    string
	Layout    string
	// ConfigKey and ConfigPath: in LayoutLocalYAML, the Secret's key holding the file and where it is mounted.
	ConfigKey, ConfigPath string
	Port                  int
	HTTPS                 bool
	TLS                   *tls.Config
	// ReplaceTimeout bounds the wait for the StatefulSet to replace an evicted pod (its termination grace
	// included), and for a PodDisruptionBudget to allow the eviction.
	ReplaceTimeout time.Duration
	RequestTag     string
}

// PodNode is a Qdrant node in a pod of a StatefulSet whose keys come from a Secret. It implements
// rotation.ClusterNode: Apply writes the Secret and evicts the pod, which the StatefulSet controller recreates from
// the same template, so the new pod loads the Secret as it now is. The StatefulSet itself is never changed.
type PodNode struct {
	kube *Kube
	api  kubeAPI
	opt  PodOptions
	http *http.Client
	// poll is how often the waits of Apply look again.
	poll time.Duration
}

var _ rotation.ClusterNode = (*PodNode)(nil)

// NewPodNode returns the node of one pod.
func NewPodNode(k *Kube, opt PodOptions) (*PodNode, error) {
	return newPodNode(k, k, opt)
}

func newPodNode(k *Kube, api kubeAPI, opt PodOptions) (*PodNode, error) {
	switch opt.Layout {
	case LayoutLocalYAML:
		if !strings.HasPrefix(opt.ConfigPath, "/") || opt.ConfigKey == "" {
			return nil, fmt.Errorf("pod %s: layout local.yaml needs the Secret's key and the absolute mount path", opt.Pod)
		}
	case LayoutEnv:
	default:
		return nil, fmt.Errorf("pod %s: layout %q: want local.yaml or env", opt.Pod, opt.Layout)
	}
	if opt.Port == 0 {
		opt.Port = 6333
	}
	if opt.ReplaceTimeout <= 0 {
		opt.ReplaceTimeout = 2 * time.Minute
	}
	return &PodNode{kube: k, api: api, opt: opt, http: newHTTPClient(opt.TLS), poll: 200 * time.Millisecond}, nil
}

// Name implements rotation.Node: the pod's name.
func (p *PodNode) Name() string { return p.opt.Pod }

func (p *PodNode) label() string {
	if p.kube != nil {
		return "pod " + p.kube.namespace + "/" + p.opt.Pod
	}
	return "pod " + p.opt.Pod
}

// Method implements rotation.Node.
func (p *PodNode) Method() string {
	what := "the QDRANT__SERVICE__*API_KEY entries of"
	if p.opt.Layout == LayoutLocalYAML {
		what = p.opt.ConfigKey + " in"
	}
	return fmt.Sprintf("kubernetes: write %s secret %s, evict pod %s (statefulset %s recreates it)", what, p.opt.Secret, p.opt.Pod, p.opt.StatefulSet)
}

// container finds the Qdrant container of the StatefulSet's pod template.
func (p *PodNode) container(sts kubeStatefulSet) (kubeContainer, error) {
	want := p.opt.Container
	if want == "" && len(sts.containers) == 1 {
		return sts.containers[0], nil
	}
	if want == "" {
		want = "qdrant"
	}
	for _, c := range sts.containers {
		if c.name == want {
			return c, nil
		}
	}
	return kubeContainer{}, fmt.Errorf("statefulset %s has no container %s; name the Qdrant container in kubernetes.container", sts.name, want)
}

// envSlots maps the key slots' variables to the entries of the pod template's environment.
type envSlots map[string]kubeEnv

// layoutOf checks that the StatefulSet takes its keys from the Secret the way the layout says, and returns the
// environment's key variables (layout env) or the config file's Secret key (layout local.yaml).
func (p *PodNode) layoutOf(c kubeContainer, sts kubeStatefulSet) (envSlots, error) {
	slots := envSlots{}
	for _, e := range c.env {
		switch name := strings.ToUpper(e.name); name {
		case envAPIKey, envAltAPIKey, envReadOnlyKey, envJWTRBAC:
			slots[name] = e
		}
	}
	where := fmt.Sprintf("statefulset %s container %s", sts.name, c.name)
	if p.opt.Layout == LayoutLocalYAML {
		for name := range slots {
			return nil, fmt.Errorf("%s: its environment sets %s, which overrides %s; use layout env, or take it out", where, name, p.opt.ConfigPath)
		}
		for _, m := range c.mounts {
			if m.path != p.opt.ConfigPath {
				continue
			}
			if m.secret != p.opt.Secret || m.key != p.opt.ConfigKey {
				return nil, fmt.Errorf("%s mounts something else than key %s of secret %s at %s", where, p.opt.ConfigKey, p.opt.Secret, p.opt.ConfigPath)
			}
			return nil, readableInPod(c, sts, m, where)
		}
		return nil, fmt.Errorf("%s does not mount key %s of secret %s at %s (a volume of the secret and a mount with subPath %s)", where, p.opt.ConfigKey, p.opt.Secret, p.opt.ConfigPath, p.opt.ConfigKey)
	}
	for _, name := range []string{envAPIKey, envAltAPIKey, envReadOnlyKey} {
		e, ok := slots[name]
		switch {
		case !ok && name == envAPIKey:
			return nil, fmt.Errorf("%s: its environment has no %s; layout env reads it from secret %s", where, name, p.opt.Secret)
		case !ok && name == envAltAPIKey:
			return nil, fmt.Errorf("%s: its environment has no %s, the second key slot a rotation needs (Qdrant >= 1.17); add it from secret %s key alt-api-key with optional: true", where, name, p.opt.Secret)
		case !ok:
		case e.secret == "":
			return nil, fmt.Errorf("%s: %s is not from secret %s (a literal in the StatefulSet, or another source), so the rotator cannot change it; use a secretKeyRef", where, name, p.opt.Secret)
		case e.secret != p.opt.Secret:
			return nil, fmt.Errorf("%s: %s is from secret %s, not %s", where, name, e.secret, p.opt.Secret)
		case name == envAltAPIKey && !e.optional:
			return nil, fmt.Errorf("%s: %s must be optional: true, so pods start while the alt slot is empty (the rotator removes key %s from the secret then)", where, name, e.key)
		}
	}
	if e, ok := slots[envJWTRBAC]; ok && e.from != "" {
		return nil, fmt.Errorf("%s: %s must be a literal value or from secret %s", where, envJWTRBAC, p.opt.Secret)
	}
	return slots, nil
}

// readableInPod refuses a Secret file the container's user could not read: Qdrant would start with no API key and
// accept every request. The kubelet writes Secret files as root:root with the volume's mode, and with an fsGroup
// gives them that group and group read.
func readableInPod(c kubeContainer, sts kubeStatefulSet, m kubeMount, where string) error {
	switch {
	case c.runAsUser == nil, *c.runAsUser == 0, m.mode&0o004 != 0, sts.fsGroup != nil:
		return nil // the image's user (root for qdrant/qdrant), root, readable by all, or by the pod's fsGroup
	case c.group != nil && *c.group == 0 && m.mode&0o040 != 0:
		return nil
	}
	return fmt.Errorf("%s: %s (mode %04o, owner root:root) cannot be read by the container's user %d, and Qdrant would then start with no API key and accept every request; set the pod's securityContext.fsGroup, or a defaultMode readable by others", where, m.path, m.mode, *c.runAsUser)
}

// read returns the StatefulSet, its container, the Secret and the slots the Secret gives a pod that starts now.
func (p *PodNode) read(ctx context.Context) (kubeSecret, envSlots, rotation.Slots, error) {
	sts, err := p.api.statefulSet(ctx, p.opt.StatefulSet)
	if err != nil {
		return kubeSecret{}, nil, rotation.Slots{}, fmt.Errorf("%s: statefulset %s: %w", p.label(), p.opt.StatefulSet, err)
	}
	c, err := p.container(sts)
	if err != nil {
		return kubeSecret{}, nil, rotation.Slots{}, fmt.Errorf("%s: %w", p.label(), err)
	}
	env, err := p.layoutOf(c, sts)
	if err != nil {
		return kubeSecret{}, nil, rotation.Slots{}, fmt.Errorf("%s: %w", p.label(), err)
	}
	sec, err := p.api.secret(ctx, p.opt.Secret)
	if err != nil {
		return kubeSecret{}, nil, rotation.Slots{}, fmt.Errorf("%s: secret %s: %w", p.label(), p.opt.Secret, err)
	}
	var keys ConfigKeys
	internalAuth, internalSet := false, false
	for _, e := range c.env {
		if strings.EqualFold(e.name, internalAuthEnv) {
			internalAuth, internalSet = truthy(envValue(e, sec)), true
		}
	}
	if p.opt.Layout == LayoutLocalYAML {
		file, err := parseNodeFile(sec.data[p.opt.ConfigKey])
		if err != nil {
			return kubeSecret{}, nil, rotation.Slots{}, fmt.Errorf("%s: secret %s key %s: %w", p.label(), p.opt.Secret, p.opt.ConfigKey, err)
		}
		keys = file.keys
		if !internalSet {
			internalAuth = file.internalAuth
		}
	} else {
		keys = ConfigKeys{APIKey: envValue(env[envAPIKey], sec), AltAPIKey: envValue(env[envAltAPIKey], sec),
			ReadOnlyAPIKey: envValue(env[envReadOnlyKey], sec), JWTRBAC: truthy(envValue(env[envJWTRBAC], sec))}
	}
	s := toSlots(keys)
	s.InternalAuth = internalAuth
	return sec, env, s, nil
}

// envValue is a variable's value as a pod starting now gets it.
func envValue(e kubeEnv, sec kubeSecret) string {
	if e.secret != "" {
		return string(sec.data[e.key])
	}
	return e.value
}

// Keys implements rotation.Node: the slots a pod starting now loads from the Secret, Unloaded when the pod was not
// restarted since the rotator last changed the Secret.
func (p *PodNode) Keys(ctx context.Context) (rotation.Slots, error) {
	sec, _, s, err := p.read(ctx)
	if err != nil {
		return rotation.Slots{}, err
	}
	if change := sec.annotations[configAnnotation]; change != "" {
		pod, err := p.api.pod(ctx, p.opt.Pod)
		if err != nil && !errors.Is(err, errKubeNotFound) {
			return rotation.Slots{}, fmt.Errorf("%s: %w", p.label(), err)
		}
		s.Unloaded = pod.annotations[configAnnotation] != change
	}
	return s, nil
}

// Recover implements rotation.Node: a pod node leaves nothing half-done (the Secret changes in one write, an
// eviction is the StatefulSet's to finish, and the StatefulSet itself is never changed).
func (p *PodNode) Recover(context.Context) error { return nil }

// Apply implements rotation.Node: it makes sure the pod may be evicted (its PodDisruptionBudgets allow it), writes
// the Secret, evicts the pod and returns once the pod the StatefulSet recreates is Ready (or will not start).
func (p *PodNode) Apply(ctx context.Context, s rotation.Slots) error {
	sec, env, _, err := p.read(ctx)
	if err != nil {
		return err
	}
	data, err := p.secretData(sec, env, s)
	if err != nil {
		return fmt.Errorf("%s: secret %s: %w", p.label(), p.opt.Secret, err)
	}
	// Asked first, so a budget that blocks leaves the Secret as it was.
	if err := p.evict(ctx, true); err != nil {
		return err
	}
	change := sec.annotations[configAnnotation]
	if !maps.EqualFunc(data, sec.data, func(a, b []byte) bool { return string(a) == string(b) }) {
		change = newChangeID()
		sec.data = data
		sec.annotations = maps.Clone(sec.annotations)
		if sec.annotations == nil {
			sec.annotations = map[string]string{}
		}
		sec.annotations[configAnnotation] = change
		if _, err := p.api.updateSecret(ctx, sec); err != nil {
			return fmt.Errorf("%s: write secret %s: %w", p.label(), p.opt.Secret, err)
		}
	}
	old, err := p.api.pod(ctx, p.opt.Pod)
	if err != nil && !errors.Is(err, errKubeNotFound) {
		return fmt.Errorf("%s: %w", p.label(), err)
	}
	if old.uid != "" && !old.deleting {
		if err := p.evict(ctx, false); err != nil {
			return err
		}
	}
	return p.awaitSuccessor(ctx, old.uid, change)
}

// secretData is the Secret's data with the slots s.
func (p *PodNode) secretData(sec kubeSecret, env envSlots, s rotation.Slots) (map[string][]byte, error) {
	data := maps.Clone(sec.data)
	if data == nil {
		data = map[string][]byte{}
	}
	want := ConfigKeys{APIKey: s.APIKey.Reveal(), AltAPIKey: s.AltAPIKey.Reveal(), ReadOnlyAPIKey: s.ReadOnlyKey.Reveal(), JWTRBAC: s.JWTRBAC}
	if p.opt.Layout == LayoutLocalYAML {
		file, err := spliceConfigKeys(sec.data[p.opt.ConfigKey], want)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", p.opt.ConfigKey, err)
		}
		data[p.opt.ConfigKey] = file
		// The keys beside the file, as Qdrant's Helm chart keeps them (for its ServiceMonitor and other readers),
		// follow the file's slots.
		for key, v := range map[string]string{"api-key": want.APIKey, "read-only-api-key": want.ReadOnlyAPIKey} {
			if _, ok := data[key]; ok {
				if v == "" {
					delete(data, key)
				} else {
					data[key] = []byte(v)
				}
			}
		}
		return data, nil
	}
	for _, v := range []struct {
		name, value string
	}{{envAPIKey, want.APIKey}, {envAltAPIKey, want.AltAPIKey}, {envReadOnlyKey, want.ReadOnlyAPIKey}} {
		e, ok := env[v.name]
		switch {
		case !ok && v.value != "":
			return nil, fmt.Errorf("the StatefulSet's environment has no %s for the key it needs", v.name)
		case !ok:
		case v.value != "":
			data[e.key] = []byte(v.value)
		case e.optional:
			delete(data, e.key) // absent, not empty: Qdrant would read an empty variable as a key
		default:
			return nil, fmt.Errorf("%s would be empty, but its secretKeyRef (key %s) is not optional", v.name, e.key)
		}
	}
	if s.JWTRBAC != truthy(envValue(env[envJWTRBAC], sec)) {
		e, ok := env[envJWTRBAC]
		if !ok || e.secret == "" {
			return nil, fmt.Errorf("the slots need %s=%t, which the StatefulSet's environment does not set; set it in the pod template", envJWTRBAC, s.JWTRBAC)
		}
		data[e.key] = []byte(strconv.FormatBool(s.JWTRBAC))
	}
	return data, nil
}

// newChangeID names one change of the Secret.
func newChangeID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// evict evicts the pod through the Eviction API, waiting (up to ReplaceTimeout) while a PodDisruptionBudget
// forbids it, as it does until a pod restarted before is Ready again; a budget that still forbids it is reported,
// never bypassed.
func (p *PodNode) evict(ctx context.Context, dryRun bool) error {
	deadline := time.Now().Add(p.opt.ReplaceTimeout)
	for {
		err := p.api.evict(ctx, p.opt.Pod, dryRun)
		switch {
		case err == nil, errors.Is(err, errKubeNotFound):
			return nil
		case !errors.Is(err, errEvictionBlocked) || time.Now().After(deadline):
			return fmt.Errorf("%s: evict: %w", p.label(), err)
		}
		if err := sleepCtx(ctx, p.poll); err != nil {
			return err
		}
	}
}

// awaitSuccessor waits until a pod of that name other than old is Ready, and marks it with the Secret change it
// started with; it returns at once when there is no change to mark or the new pod is down.
func (p *PodNode) awaitSuccessor(ctx context.Context, old, change string) error {
	deadline := time.Now().Add(p.opt.ReplaceTimeout)
	for {
		pod, err := p.api.pod(ctx, p.opt.Pod)
		if err != nil && !errors.Is(err, errKubeNotFound) {
			return fmt.Errorf("%s: %w", p.label(), err)
		}
		if err == nil && pod.uid != old && !pod.deleting && (change == "" || pod.down()) {
			return nil // nothing to mark, or a pod that will not start: the checks find it down
		}
		// Marked once Ready: an update of the pod while the kubelet starts it delays its start by a sync.
		if err == nil && pod.uid != old && !pod.deleting && pod.ready {
			if err := p.api.annotatePod(ctx, p.opt.Pod, pod.uid, configAnnotation, change); err == nil || !errors.Is(err, errKubeConflict) {
				if err != nil {
					return fmt.Errorf("%s: %w", p.label(), err)
				}
				return nil
			}
			// Replaced again meanwhile: mark the newest.
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no pod recreated by statefulset %s became Ready within %s", p.label(), p.opt.StatefulSet, p.opt.ReplaceTimeout)
		}
		if err := sleepCtx(ctx, p.poll); err != nil {
			return err
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// endpoint is the pod's REST API at its pod IP.
func (p *PodNode) endpoint() endpoint {
	return endpoint{label: p.label(), client: p.http, tag: p.opt.RequestTag, base: p.baseURL, lost: func(ctx context.Context) bool {
		pod, err := p.api.pod(ctx, p.opt.Pod)
		return err == nil && pod.down()
	}}
}

// down says the pod's Qdrant process is not running and will not start without help: it exited, crash-loops, or
// its container cannot be created (a bad image, a missing Secret key).
func (k kubePod) down() bool {
	if k.phase == "Failed" || k.phase == "Succeeded" {
		return true
	}
	if k.running {
		return false
	}
	if k.exited != "" {
		return true
	}
	switch k.waiting {
	case "CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
		"CreateContainerConfigError", "CreateContainerError", "RunContainerError":
		return true
	}
	return false
}

// baseURL is http(s)://POD_IP:PORT of the pod as it is now.
func (p *PodNode) baseURL(ctx context.Context) (string, error) {
	_, u, err := p.locate(ctx)
	return u, err
}

// locate reads the pod and returns it with its base URL.
func (p *PodNode) locate(ctx context.Context) (kubePod, string, error) {
	pod, err := p.api.pod(ctx, p.opt.Pod)
	if err != nil {
		return pod, "", fmt.Errorf("%s: %w", p.label(), err)
	}
	if pod.down() {
		return pod, "", fmt.Errorf("%s: %w", p.label(), rotation.ErrNodeDown)
	}
	if pod.ip == "" || pod.deleting {
		return pod, "", fmt.Errorf("%s: no pod IP yet (%s)", p.label(), pod.phase)
	}
	scheme := "http"
	if p.opt.HTTPS {
		scheme = "https"
	}
	return pod, fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(pod.ip, strconv.Itoa(p.opt.Port))), nil
}

// Probe implements rotation.Node with GET /collections at the pod IP. A pod that accepts the key but is not Ready
// (its readiness probe has not passed yet) is not back yet: a Service sends it no client, and a PodDisruptionBudget
// counts it as disrupted, so the rotator waits for it as a rollout would.
func (p *PodNode) Probe(ctx context.Context, key rotation.Key) error {
	ready := false
	ep := p.endpoint()
	ep.base = func(ctx context.Context) (string, error) {
		pod, u, err := p.locate(ctx)
		ready = pod.ready
		return u, err
	}
	if err := ep.probe(ctx, key); err != nil {
		return err
	}
	if !ready {
		return fmt.Errorf("%s accepts the key but is not Ready yet", p.label())
	}
	return nil
}

// Cluster implements rotation.ClusterNode.
func (p *PodNode) Cluster(ctx context.Context, key rotation.Key) (rotation.ClusterView, error) {
	return p.endpoint().cluster(ctx, key)
}

// Diagnose implements rotation.Node: the pod's state, what keeps it from starting (a Secret key missing, a
// config file without a key), its warning events and its container's last log lines.
func (p *PodNode) Diagnose(ctx context.Context) rotation.Diagnosis {
	var d rotation.Diagnosis
	if _, _, s, err := p.read(ctx); err != nil {
		d.Causes = append(d.Causes, err.Error())
	} else if s.APIKey.IsZero() && s.ReadOnlyKey.IsZero() {
		d.Causes = append(d.Causes, fmt.Sprintf("secret %s gives the pods no api_key", p.opt.Secret))
	}
	pod, err := p.api.pod(ctx, p.opt.Pod)
	if err != nil {
		d.Causes = append(d.Causes, fmt.Sprintf("%s: %v", p.label(), err))
		return d
	}
	state := "phase " + pod.phase
	switch {
	case pod.waiting != "":
		state += ", container waiting: " + pod.waiting
	case pod.exited != "":
		state += ", container exited: " + pod.exited
	case !pod.ready:
		state += ", not Ready"
	}
	if pod.message != "" {
		state += " (" + pod.message + ")"
	}
	if pod.restarts > 0 {
		state += fmt.Sprintf(", %d restarts (last: %s)", pod.restarts, pod.lastExit)
	}
	d.Causes = append(d.Causes, p.label()+": "+state)
	if events, err := p.api.podEvents(ctx, p.opt.Pod); err == nil {
		d.Causes = append(d.Causes, events...)
	}
	sts, err := p.api.statefulSet(ctx, p.opt.StatefulSet)
	if err != nil {
		return d
	}
	c, err := p.container(sts)
	if err != nil {
		return d
	}
	logs, err := p.api.podLog(ctx, p.opt.Pod, c.name, logTailLines, pod.restarts > 0 && !pod.running)
	if err == nil {
		for _, l := range strings.Split(strings.TrimRight(logs, "\n"), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				d.LogTail = append(d.LogTail, l)
			}
		}
	}
	return d
}
