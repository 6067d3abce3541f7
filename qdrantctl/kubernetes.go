package qdrantctl

// This is the only file that imports client-go: the Kubernetes API of the pod nodes (podnode.go).

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeOptions say how to reach a Kubernetes API server and which namespace to work in.
type KubeOptions struct {
	// Kubeconfig is a kubeconfig file ("": the in-cluster service account of the pod the rotator runs in).
	Kubeconfig string
	// Context is the kubeconfig context ("": its current context).
	Context   string
	Namespace string
}

// Kube is a Kubernetes API server, in one namespace. It implements kubeAPI.
type Kube struct {
	cs        kubernetes.Interface
	namespace string
}

var _ kubeAPI = (*Kube)(nil)

// DialKube returns the API server of the options. It makes no request.
func DialKube(opt KubeOptions) (*Kube, error) {
	var cfg *rest.Config
	var err error
	if opt.Kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: no kubeconfig given and not in a cluster: %w", err)
		}
	} else {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: opt.Kubeconfig}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: opt.Context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: kubeconfig %s: %w", opt.Kubeconfig, err)
		}
	}
	cfg.UserAgent = "qdrant-rotator"
	// client-go's default of 5 requests a second (burst 10) throttles the checks of a restarting pod (each reads the
	// pod: its IP and Ready), which then lag the pod by a second or more; one rotation of one StatefulSet stays far
	// below these bounds.
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	return &Kube{cs: cs, namespace: opt.Namespace}, nil
}

// kubeErr maps the API's errors onto kubeAPI's.
func kubeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %s", errKubeNotFound, err.Error())
	case apierrors.IsConflict(err):
		return fmt.Errorf("%w: %s", errKubeConflict, err.Error())
	case apierrors.IsTooManyRequests(err):
		return fmt.Errorf("%w: %s", errEvictionBlocked, err.Error())
	}
	return err
}

// StatefulSetPods names the pods of a StatefulSet, by ordinal (NAME-0, NAME-1, ...; spec.ordinals.start honoured).
func (k *Kube) StatefulSetPods(ctx context.Context, name string) ([]string, error) {
	sts, err := k.cs.AppsV1().StatefulSets(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("statefulset %s/%s: %w", k.namespace, name, kubeErr(err))
	}
	replicas, start := 1, 0
	if sts.Spec.Replicas != nil {
		replicas = int(*sts.Spec.Replicas)
	}
	if sts.Spec.Ordinals != nil {
		start = int(sts.Spec.Ordinals.Start)
	}
	pods := make([]string, 0, replicas)
	for i := start; i < start+replicas; i++ {
		pods = append(pods, fmt.Sprintf("%s-%d", name, i))
	}
	return pods, nil
}

// StatefulSetOf finds the one StatefulSet that owns the pods a label selector matches.
func (k *Kube) StatefulSetOf(ctx context.Context, selector string) (string, error) {
	list, err := k.cs.CoreV1().Pods(k.namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "", fmt.Errorf("pods %s in %s: %w", selector, k.namespace, kubeErr(err))
	}
	owners := map[string]bool{}
	for _, p := range list.Items {
		owner := metav1.GetControllerOf(&p)
		if owner == nil || owner.Kind != "StatefulSet" {
			return "", fmt.Errorf("pod %s/%s matches selector %s but no StatefulSet owns it", k.namespace, p.Name, selector)
		}
		owners[owner.Name] = true
	}
	switch len(owners) {
	case 0:
		return "", fmt.Errorf("no pod in namespace %s matches selector %s", k.namespace, selector)
	case 1:
		for name := range owners {
			return name, nil
		}
	}
	names := make([]string, 0, len(owners))
	for name := range owners {
		names = append(names, name)
	}
	sort.Strings(names)
	return "", fmt.Errorf("selector %s matches pods of statefulsets %s; name one statefulset", selector, strings.Join(names, ", "))
}

func (k *Kube) secret(ctx context.Context, name string) (kubeSecret, error) {
	s, err := k.cs.CoreV1().Secrets(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return kubeSecret{}, kubeErr(err)
	}
	return kubeSecret{name: s.Name, version: s.ResourceVersion, data: s.Data, annotations: s.Annotations}, nil
}

func (k *Kube) updateSecret(ctx context.Context, s kubeSecret) (kubeSecret, error) {
	cur, err := k.cs.CoreV1().Secrets(k.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if err != nil {
		return kubeSecret{}, kubeErr(err)
	}
	if cur.ResourceVersion != s.version {
		return kubeSecret{}, fmt.Errorf("secret %s: %w", s.name, errKubeConflict)
	}
	cur.Data, cur.StringData, cur.Annotations = s.data, nil, s.annotations
	out, err := k.cs.CoreV1().Secrets(k.namespace).Update(ctx, cur, metav1.UpdateOptions{FieldManager: "qdrant-rotator"})
	if err != nil {
		return kubeSecret{}, kubeErr(err)
	}
	return kubeSecret{name: out.Name, version: out.ResourceVersion, data: out.Data, annotations: out.Annotations}, nil
}

func (k *Kube) statefulSet(ctx context.Context, name string) (kubeStatefulSet, error) {
	sts, err := k.cs.AppsV1().StatefulSets(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return kubeStatefulSet{}, kubeErr(err)
	}
	out := kubeStatefulSet{name: sts.Name, replicas: 1}
	if sts.Spec.Replicas != nil {
		out.replicas = int(*sts.Spec.Replicas)
	}
	var podUser, podGroup *int64
	if sc := sts.Spec.Template.Spec.SecurityContext; sc != nil {
		out.fsGroup, podUser, podGroup = sc.FSGroup, sc.RunAsUser, sc.RunAsGroup
	}
	// The Secret and key each volume of a Secret gives a subPath mount (through items when it lists them).
	type secretVolume struct {
		secret string
		items  map[string]string // path -> key
		modes  map[string]int32  // path -> mode
		mode   int32             // defaultMode
	}
	volumes := map[string]secretVolume{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		switch {
		case v.Secret != nil:
			sv := secretVolume{secret: v.Secret.SecretName, mode: 0o644, modes: map[string]int32{}}
			if v.Secret.DefaultMode != nil {
				sv.mode = *v.Secret.DefaultMode
			}
			if len(v.Secret.Items) > 0 {
				sv.items = map[string]string{}
				for _, it := range v.Secret.Items {
					sv.items[it.Path] = it.Key
					if it.Mode != nil {
						sv.modes[it.Path] = *it.Mode
					}
				}
			}
			volumes[v.Name] = sv
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret == nil {
					continue
				}
				sv := volumes[v.Name]
				if sv.items == nil {
					sv.items, sv.modes, sv.mode = map[string]string{}, map[string]int32{}, 0o644
				}
				if v.Projected.DefaultMode != nil {
					sv.mode = *v.Projected.DefaultMode
				}
				sv.secret = src.Secret.Name
				for _, it := range src.Secret.Items {
					sv.items[it.Path] = it.Key
					if it.Mode != nil {
						sv.modes[it.Path] = *it.Mode
					}
				}
				volumes[v.Name] = sv
			}
		}
	}
	for _, c := range sts.Spec.Template.Spec.Containers {
		kc := kubeContainer{name: c.Name, runAsUser: podUser, group: podGroup}
		if sc := c.SecurityContext; sc != nil {
			kc.runAsUser = cmp.Or(sc.RunAsUser, kc.runAsUser)
			kc.group = cmp.Or(sc.RunAsGroup, kc.group)
		}
		for _, e := range c.Env {
			ke := kubeEnv{name: e.Name, value: e.Value}
			if e.ValueFrom != nil {
				if ref := e.ValueFrom.SecretKeyRef; ref != nil {
					ke.secret, ke.key, ke.optional = ref.Name, ref.Key, ref.Optional != nil && *ref.Optional
				} else {
					ke.from = "another source"
				}
			}
			kc.env = append(kc.env, ke)
		}
		for _, m := range c.VolumeMounts {
			km := kubeMount{path: m.MountPath, subPath: m.SubPath}
			if sv, ok := volumes[m.Name]; ok && m.SubPath != "" {
				km.secret, km.key, km.mode = sv.secret, m.SubPath, sv.mode
				if sv.items != nil {
					km.key = sv.items[m.SubPath]
				}
				if mode, ok := sv.modes[m.SubPath]; ok {
					km.mode = mode
				}
			}
			kc.mounts = append(kc.mounts, km)
		}
		out.containers = append(out.containers, kc)
	}
	return out, nil
}

func (k *Kube) pod(ctx context.Context, name string) (kubePod, error) {
	p, err := k.cs.CoreV1().Pods(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return kubePod{}, kubeErr(err)
	}
	out := kubePod{uid: string(p.UID), ip: p.Status.PodIP, deleting: p.DeletionTimestamp != nil, phase: string(p.Status.Phase), annotations: p.Annotations}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.ready = c.Status == corev1.ConditionTrue
		}
	}
	// The Qdrant container is the pod's only one, or the one named qdrant; with several, a not running one counts.
	statuses := p.Status.ContainerStatuses
	if i := slices.IndexFunc(statuses, func(s corev1.ContainerStatus) bool { return s.Name == "qdrant" }); i >= 0 {
		statuses = statuses[i : i+1]
	}
	out.running = len(statuses) > 0
	for _, s := range statuses {
		out.restarts += int(s.RestartCount)
		switch {
		case s.State.Running != nil:
		case s.State.Waiting != nil:
			out.running, out.waiting, out.message = false, s.State.Waiting.Reason, s.State.Waiting.Message
		case s.State.Terminated != nil:
			out.running, out.exited = false, fmt.Sprintf("%s, exit code %d", s.State.Terminated.Reason, s.State.Terminated.ExitCode)
		}
		if t := s.LastTerminationState.Terminated; t != nil {
			out.lastExit = fmt.Sprintf("%s, exit code %d", t.Reason, t.ExitCode)
		}
	}
	return out, nil
}

func (k *Kube) evict(ctx context.Context, pod string, dryRun bool) error {
	opts := &metav1.DeleteOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	err := k.cs.PolicyV1().Evictions(k.namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: k.namespace}, DeleteOptions: opts,
	})
	return kubeErr(err)
}

func (k *Kube) annotatePod(ctx context.Context, pod, uid, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": uid, "annotations": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	_, err = k.cs.CoreV1().Pods(k.namespace).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "qdrant-rotator"})
	if apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
		return fmt.Errorf("pod %s was replaced: %w", pod, errKubeConflict) // the uid precondition failed
	}
	return kubeErr(err)
}

func (k *Kube) podLog(ctx context.Context, pod, container string, lines int, previous bool) (string, error) {
	n := int64(lines)
	rc, err := k.cs.CoreV1().Pods(k.namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &n, Previous: previous}).Stream(ctx)
	if err != nil {
		return "", kubeErr(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	return string(b), err
}

func (k *Kube) podEvents(ctx context.Context, pod string) ([]string, error) {
	list, err := k.cs.CoreV1().Events(k.namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod + ",type=Warning",
	})
	if err != nil {
		return nil, kubeErr(err)
	}
	sort.SliceStable(list.Items, func(i, j int) bool { return list.Items[i].LastTimestamp.Before(&list.Items[j].LastTimestamp) })
	var out []string
	for _, e := range list.Items {
		out = append(out, fmt.Sprintf("event %s: %s", e.Reason, e.Message))
	}
	if len(out) > 5 {
		out = out[len(out)-5:]
	}
	return out, nil
}
