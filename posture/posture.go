// Package posture reviews a Qdrant fleet's security posture against the practices operators are asked to follow
// (API keys on every node, TLS beyond loopback, no ports open to the world, keys out of the environment, config
// files private to the container's user, short-lived keys, different keys per environment, least privilege, audit
// logs on). It gathers facts through the small interfaces it declares (NodeSource, KeySource, PolicyReader), and
// each check is a small function over those facts that returns findings. A finding names a key by its keyed
// fingerprint only, never by the key.
package posture

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// Severity ranks a finding.
type Severity int

// Severities, in increasing order.
const (
	Low Severity = iota + 1
	Medium
	High
)

func (s Severity) String() string {
	switch s {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalJSON writes the severity's name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity's name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	v, err := ParseSeverity(name)
	*s = v
	return err
}

// ParseSeverity reads "low", "medium" or "high".
func ParseSeverity(name string) (Severity, error) {
	for _, s := range []Severity{Low, Medium, High} {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%q: want low, medium or high", name)
}

// Finding is one departure from a practice. Evidence names keys by fingerprint only.
type Finding struct {
	Deployment string   `json:"deployment,omitempty"`
	Node       string   `json:"node,omitempty"`
	Check      string   `json:"check"`
	Severity   Severity `json:"severity"`
	Evidence   string   `json:"evidence"`
	Practice   string   `json:"practice"`
	Fix        string   `json:"fix"`
}

// Worst is the highest severity among findings (0 when there are none).
func Worst(findings []Finding) Severity {
	var w Severity
	for _, f := range findings {
		w = max(w, f.Severity)
	}
	return w
}

// Checks, by name (the `check` of a finding and the label of the metric).
const (
	CheckOpen             = "node_open"
	CheckNoAPIKey         = "no_api_key"
	CheckTLSOff           = "tls_off_beyond_loopback"
	CheckPublished        = "port_published_beyond_loopback"
	CheckEnvKeys          = "keys_in_environment"
	CheckFileOthers       = "config_readable_by_others"
	CheckFileUnreadable   = "config_unreadable_by_container"
	CheckKeyAge           = "key_older_than_max_age"
	CheckJWTNoExp         = "jwt_without_exp"
	CheckDuplicateKey     = "same_key_in_two_deployments"
	CheckNoReadOnlyKey    = "read_only_consumer_without_read_only_key"
	CheckAuditLogOff      = "qdrant_audit_log_disabled"
	CheckPolicyBroad      = "consumer_policy_broader_than_one_path"
	CheckPolicyUnreadable = "consumer_policy_unreadable"
	CheckAPIExposed       = "rotator_api_beyond_loopback_without_tls"
	CheckNotGathered      = "facts_not_gathered"
)

// Practices the checks enforce (the seed's words).
const (
	practiceAPIKey      = "protect every node with an API key"
	practiceTLS         = "use TLS for every connection beyond the host"
	practiceNetwork     = "firewall rules, private networks and IP allow lists: expose nothing beyond what clients need"
	practiceSecretStore = "keep keys in a secret store, out of places many can read"
	practiceRotate      = "rotate keys regularly"
	practiceExpiry      = "short-lived credentials"
	practiceEnvs        = "different keys per environment"
	practiceLeast       = "least privilege"
	practiceLogging     = "detailed logging and regular security audits"
)

// PortBinding is a container port published on the host.
type PortBinding struct {
	ContainerPort int    `json:"container_port"`
	HostIP        string `json:"host_ip"` // "" or "0.0.0.0": every IPv4 address
	HostPort      int    `json:"host_port"`
}

// FileFacts describe a node's config file on the host.
type FileFacts struct {
	Path string      `json:"path"`
	Mode fs.FileMode `json:"mode"`
	UID  int         `json:"uid"`
	GID  int         `json:"gid"`
	// ReadableByContainer says whether the container's user can read it (judged as the kernel would).
	ReadableByContainer bool   `json:"readable_by_container"`
	ContainerUser       string `json:"container_user"`
}

// NodeFacts are what the review knows of one node's container.
type NodeFacts struct {
	Node string `json:"node"`
	// EnvKeys are the names (never the values) of the environment variables that hold a key slot.
	EnvKeys []string `json:"env_keys,omitempty"`
	// APIKey says whether the node starts with an API key, from its environment or its config file.
	APIKey bool `json:"api_key"`
	// KeySource is "env", "file" or "" (none).
	KeySource string        `json:"key_source,omitempty"`
	Ports     []PortBinding `json:"ports,omitempty"`
	// TLS is service.enable_tls (or QDRANT__SERVICE__ENABLE_TLS).
	TLS bool `json:"tls"`
	// AuditLog is audit.enabled (or QDRANT__AUDIT__ENABLED).
	AuditLog bool `json:"audit_log"`
	// ConfigFile is the host file behind the node's config (nil when the node takes its keys from the environment).
	ConfigFile *FileFacts `json:"config_file,omitempty"`
}

// KeyFacts describe one current key record in Vault (a zero Fingerprint: none).
type KeyFacts struct {
	Fingerprint string    `json:"fingerprint,omitempty"`
	Since       time.Time `json:"since,omitzero"`
}

// NamedKeyFacts describe a named key's record.
type NamedKeyFacts struct {
	Name        string    `json:"name"`
	JWT         bool      `json:"jwt"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
}

// DeploymentFacts are what the review knows of one deployment.
type DeploymentFacts struct {
	Name  string      `json:"name"`
	Nodes []NodeFacts `json:"nodes,omitempty"`
	// Open are the nodes that accepted a key never issued.
	Open     []string        `json:"open,omitempty"`
	Admin    KeyFacts        `json:"admin"`
	ReadOnly KeyFacts        `json:"read_only"`
	Named    []NamedKeyFacts `json:"named,omitempty"`
	MaxAge   time.Duration   `json:"max_age,omitempty"`
	// ReadOnlyConsumer says the config has read-only consumers (read_only: rotate, or a read-only consumer class).
	ReadOnlyConsumer bool `json:"read_only_consumer,omitempty"`
	// Unknown lists what could not be gathered ("node qdrant-0: ...", "keys: ..."), each a low finding.
	Unknown []string `json:"unknown,omitempty"`
	// Reviewed is false for a deployment gathered only to compare keys (not selected): no finding is made of it.
	Reviewed bool `json:"reviewed"`
}

// PolicyFacts describe one consumer Vault policy.
type PolicyFacts struct {
	Name  string   `json:"name"`
	Paths []string `json:"paths,omitempty"`
	// Error is why the policy could not be read ("" when it was).
	Error string `json:"error,omitempty"`
}

// APIFacts describe the rotator's own API.
type APIFacts struct {
	Listen string `json:"listen"`
	TLS    bool   `json:"tls"`
}

// Facts are everything a review looks at.
type Facts struct {
	Now         time.Time         `json:"now"`
	Deployments []DeploymentFacts `json:"deployments"`
	Policies    []PolicyFacts     `json:"policies,omitempty"`
	API         *APIFacts         `json:"api,omitempty"`
}

// Review runs every check over the facts and returns the findings, sorted by deployment, node and check.
func Review(f Facts) []Finding {
	var out []Finding
	for _, d := range f.Deployments {
		if !d.Reviewed {
			continue
		}
		out = append(out, notGathered(d)...)
		out = append(out, openNodes(d)...)
		for _, n := range d.Nodes {
			for _, check := range []func(string, NodeFacts) []Finding{noAPIKey, tlsOff, publishedBeyondLoopback, keysInEnvironment, configFileAccess, auditLogOff} {
				out = append(out, check(d.Name, n)...)
			}
		}
		out = append(out, keyAge(d, f.Now)...)
		out = append(out, jwtWithoutExp(d)...)
		out = append(out, noReadOnlyKey(d)...)
	}
	out = append(out, duplicateKeys(f.Deployments)...)
	out = append(out, consumerPolicies(f.Policies)...)
	if f.API != nil {
		out = append(out, apiExposed(*f.API)...)
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		return strings.Compare(a.Deployment+"\x00"+a.Node+"\x00"+a.Check, b.Deployment+"\x00"+b.Node+"\x00"+b.Check)
	})
	return out
}
