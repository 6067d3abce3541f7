package qdrantctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/qdrantrotator/rotator/posture"
)

// Variables of the settings the security review reads (Qdrant matches them case-insensitively; later wins).
const (
	envEnableTLS    = "QDRANT__SERVICE__ENABLE_TLS"
	envAuditEnabled = "QDRANT__AUDIT__ENABLED"
)

var _ posture.NodeSource = (*Node)(nil)

// Facts gathers what the security review needs of the node: the names (never the values) of the key variables in
// its environment, its published ports, whether TLS and the audit log are on, and, in file mode, the config file's
// owner, mode and readability by the container's user. It changes nothing.
func (n *Node) Facts(ctx context.Context) (posture.NodeFacts, error) {
	info, err := n.eng.Inspect(ctx, n.opt.Container)
	if err != nil {
		return posture.NodeFacts{}, err
	}
	f := posture.NodeFacts{Node: n.opt.Container}
	for _, p := range info.Ports {
		f.Ports = append(f.Ports, posture.PortBinding{ContainerPort: p.ContainerPort, HostIP: p.HostIP, HostPort: p.HostPort})
	}
	envTLS, tlsSet := envSetting(info.Env, envEnableTLS)
	envAudit, auditSet := envSetting(info.Env, envAuditEnabled)
	envKeys := slotsFromEnv(info.Env)
	for _, kv := range info.Env {
		name, value, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case envAPIKey, envAltAPIKey, envReadOnlyKey:
			if value != "" {
				f.EnvKeys = append(f.EnvKeys, name)
			}
		}
	}
	if envKeys.APIKey != "" {
		f.APIKey, f.KeySource = true, "env"
	}
	if n.opt.Mode == ModeFile {
		path, err := n.hostConfigPath(info)
		if err != nil {
			return f, err
		}
		ff, fileTLS, fileAudit, fileKey, err := fileFacts(path, info.User)
		if err != nil {
			return f, fmt.Errorf("node %s: %w", n.opt.Container, err)
		}
		f.ConfigFile = ff
		f.TLS, f.AuditLog = fileTLS, fileAudit
		if !f.APIKey && fileKey {
			f.APIKey, f.KeySource = ff.ReadableByContainer, "file" // an unreadable file gives Qdrant no key
		}
	}
	if tlsSet {
		f.TLS = envTLS
	}
	if auditSet {
		f.AuditLog = envAudit
	}
	return f, nil
}

// envSetting reads a boolean setting's variable (names case-insensitive, later wins).
func envSetting(env []string, name string) (value, set bool) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.EqualFold(k, name) {
			value, set = truthy(v), true
		}
	}
	return value, set
}

// fileFacts reads a node's config file on the host: owner, mode, readability by the container's user, and the
// settings service.enable_tls, audit.enabled and whether service.api_key is set.
func fileFacts(path, user string) (ff *posture.FileFacts, tlsOn, auditOn, apiKey bool, err error) {
	a, err := attrsOf(path)
	if err != nil {
		return nil, false, false, false, err
	}
	ff = &posture.FileFacts{Path: path, Mode: a.mode, UID: a.uid, GID: a.gid, ReadableByContainer: parseContainerUser(user).canRead(a), ContainerUser: user}
	file, err := readNodeFile(path)
	if err != nil {
		return ff, false, false, false, err
	}
	return ff, file.tls, file.audit, file.keys.APIKey != "", nil
}
