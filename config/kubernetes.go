package config

import (
	"regexp"
	"strings"
)

// Kubernetes names a Qdrant StatefulSet whose keys the rotator keeps in a Secret (mode kubernetes).
type Kubernetes struct {
	// Kubeconfig is the kubeconfig file of the API server ("": the in-cluster service account).
	Kubeconfig string `yaml:"kubeconfig"`
	// Context is the kubeconfig context (default: its current context).
	Context string `yaml:"context"`
	// Namespace holds the StatefulSet and its Secret.
	Namespace string `yaml:"namespace"`
	// StatefulSet names the StatefulSet; or Selector, a pod label selector, finds it from its pods.
	StatefulSet string `yaml:"statefulset"`
	Selector    string `yaml:"selector"`
	// Container is the Qdrant container of the pods (default: the one named qdrant, or the only one).
	Container string `yaml:"container"`
	// Secret is the Secret the pods load their keys from (Qdrant's Helm chart names it <fullname>-apikey).
	Secret string `yaml:"secret"`
	// Layout is how the keys reach Qdrant from the Secret: "local.yaml" (default: a Qdrant config file in the
	// Secret, mounted with subPath at config_path, as Qdrant's Helm chart does) or "env" (QDRANT__SERVICE__*API_KEY
	// variables from secretKeyRef).
	Layout string `yaml:"layout"`
	// ConfigKey is, in layout local.yaml, the Secret's key holding the file (default local.yaml).
	ConfigKey string `yaml:"config_key"`
	// ConfigPath is, in layout local.yaml, where the container mounts it (default /qdrant/config/local.yaml).
	ConfigPath string `yaml:"config_path"`
	// Port is Qdrant's REST port in the pods (default 6333); pods are checked at their pod IP.
	Port int `yaml:"port"`
}

// Kubernetes layouts.
const (
	LayoutLocalYAML = "local.yaml"
	LayoutEnv       = "env"
)

// dnsLabel is a Kubernetes object name of the kinds named here (RFC 1123 subdomain, lower case).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// setDefaults fills in the defaults of a kubernetes section.
func (k *Kubernetes) setDefaults() {
	if k.Layout == "" {
		k.Layout = LayoutLocalYAML
	}
	if k.Layout == LayoutLocalYAML {
		if k.ConfigKey == "" {
			k.ConfigKey = "local.yaml"
		}
		if k.ConfigPath == "" {
			k.ConfigPath = "/qdrant/config/local.yaml"
		}
	}
	if k.Port == 0 {
		k.Port = 6333
	}
}

// checkKubernetes checks a deployment of mode kubernetes: its kubernetes section, and none of the Docker settings.
func (d Deployment) checkKubernetes(bad reporter, f string) {
	for _, c := range []struct {
		field string
		set   bool
	}{{"containers", len(d.Containers) > 0}, {"label", d.Label != ""}, {"config_path", d.ConfigPath != ""},
		{"urls", len(d.URLs) > 0}, {"docker", d.Docker != nil}, {"docker_hosts", len(d.DockerHosts) > 0}} {
		if c.set {
			bad(f+"."+c.field, "is for the Docker modes (env, file); mode kubernetes finds its pods through kubernetes")
		}
	}
	k := d.Kubernetes
	if k == nil {
		bad(f+".kubernetes", "mode kubernetes needs it: namespace, statefulset or selector, and secret")
		return
	}
	kf := f + ".kubernetes"
	if !dnsLabel.MatchString(k.Namespace) {
		bad(kf+".namespace", "%q: want a Kubernetes object name", k.Namespace)
	}
	if !dnsLabel.MatchString(k.Secret) {
		bad(kf+".secret", "%q: want a Kubernetes object name", k.Secret)
	}
	if (k.StatefulSet == "") == (k.Selector == "") {
		bad(kf, "set exactly one of statefulset and selector")
	}
	if k.StatefulSet != "" && !dnsLabel.MatchString(k.StatefulSet) {
		bad(kf+".statefulset", "%q: want a Kubernetes object name", k.StatefulSet)
	}
	if k.Selector != "" && !podSelector.MatchString(k.Selector) {
		bad(kf+".selector", "%q: want key=value pairs separated by commas", k.Selector)
	}
	switch k.Layout {
	case LayoutLocalYAML:
		if !strings.HasPrefix(k.ConfigPath, "/") {
			bad(kf+".config_path", "%q: want the file's absolute path inside the container", k.ConfigPath)
		}
	case LayoutEnv:
		if k.ConfigKey != "" || k.ConfigPath != "" {
			bad(kf+".layout", "env: config_key and config_path are for layout local.yaml")
		}
	default:
		bad(kf+".layout", "%q: want local.yaml or env", k.Layout)
	}
	if k.Port < 1 || k.Port > 65535 {
		bad(kf+".port", "%d: want 1 to 65535", k.Port)
	}
}

// podSelector is an equality-based label selector: key=value[,key=value...].
var podSelector = regexp.MustCompile(`^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*(,[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*)*$`)
