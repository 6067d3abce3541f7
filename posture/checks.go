package posture

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

func notGathered(d DeploymentFacts) []Finding {
	var out []Finding
	for _, u := range d.Unknown {
		out = append(out, Finding{Deployment: d.Name, Check: CheckNotGathered, Severity: Low, Evidence: "could not check: " + u,
			Practice: practiceLogging, Fix: "make the node and Vault reachable by the rotator and run the audit again"})
	}
	return out
}

// openNodes: a node that accepted a key never issued serves every request.
func openNodes(d DeploymentFacts) []Finding {
	var out []Finding
	for _, n := range d.Open {
		out = append(out, Finding{Deployment: d.Name, Node: n, Check: CheckOpen, Severity: High,
			Evidence: "accepted a random key that was never issued: the node runs with no API key",
			Practice: practiceAPIKey,
			Fix:      "make the node load its key (a config file its user can read, or the key variable), then `rotator verify`"})
	}
	return out
}

func noAPIKey(dep string, n NodeFacts) []Finding {
	if n.APIKey {
		return nil
	}
	return []Finding{{Deployment: dep, Node: n.Node, Check: CheckNoAPIKey, Severity: High,
		Evidence: "neither the container's environment nor its config file sets service.api_key",
		Practice: practiceAPIKey, Fix: "give the node an API key (`rotator rotate --adopt` imports one the nodes share)"}}
}

// beyondLoopback says whether a host IP a port is published on reaches beyond the host: "" (every address),
// 0.0.0.0, ::, or any address that is not loopback.
func beyondLoopback(hostIP string) bool {
	ip, err := netip.ParseAddr(strings.Trim(hostIP, "[]"))
	if err != nil {
		return true // "" or a name: every address, at worst
	}
	return !ip.IsLoopback()
}

var portNames = map[int]string{6333: "REST", 6334: "gRPC", 6335: "p2p"}

func exposedPorts(n NodeFacts) []PortBinding {
	var out []PortBinding
	for _, p := range n.Ports {
		if portNames[p.ContainerPort] != "" && beyondLoopback(p.HostIP) {
			out = append(out, p)
		}
	}
	return out
}

func tlsOff(dep string, n NodeFacts) []Finding {
	if n.TLS {
		return nil
	}
	for _, p := range exposedPorts(n) {
		if p.ContainerPort == 6333 {
			return []Finding{{Deployment: dep, Node: n.Node, Check: CheckTLSOff, Severity: High,
				Evidence: fmt.Sprintf("REST (6333) is published on %s:%d without TLS: keys cross the network in clear", hostOrAll(p.HostIP), p.HostPort),
				Practice: practiceTLS,
				Fix:      "turn on service.enable_tls with a certificate, or terminate TLS in a reverse proxy and publish 6333 on 127.0.0.1 only"}}
		}
	}
	return nil
}

func hostOrAll(ip string) string {
	if ip == "" {
		return "0.0.0.0"
	}
	return ip
}

func publishedBeyondLoopback(dep string, n NodeFacts) []Finding {
	var out []Finding
	for _, p := range exposedPorts(n) {
		sev := Medium
		fix := fmt.Sprintf("publish %d on 127.0.0.1 (ports: \"127.0.0.1:%d:%d\") and put a reverse proxy with an IP allow list in front", p.ContainerPort, p.HostPort, p.ContainerPort)
		if p.ContainerPort == 6335 {
			sev = High
			fix = "never publish the p2p port 6335: peers reach it over a private Docker network"
		}
		out = append(out, Finding{Deployment: dep, Node: n.Node, Check: CheckPublished, Severity: sev,
			Evidence: fmt.Sprintf("%s port %d is published on %s:%d", portNames[p.ContainerPort], p.ContainerPort, hostOrAll(p.HostIP), p.HostPort),
			Practice: practiceNetwork, Fix: fix})
	}
	return out
}

func keysInEnvironment(dep string, n NodeFacts) []Finding {
	if len(n.EnvKeys) == 0 {
		return nil
	}
	return []Finding{{Deployment: dep, Node: n.Node, Check: CheckEnvKeys, Severity: Medium,
		Evidence: "the container's environment holds " + strings.Join(n.EnvKeys, ", ") + ": anyone with Docker API access reads it (docker inspect)",
		Practice: practiceSecretStore,
		Fix:      "move the keys to a config file mounted from the host, readable by the container's user only (mode: file, config_path)"}}
}

func configFileAccess(dep string, n NodeFacts) []Finding {
	f := n.ConfigFile
	if f == nil {
		return nil
	}
	var out []Finding
	if f.Mode&0o004 != 0 {
		out = append(out, Finding{Deployment: dep, Node: n.Node, Check: CheckFileOthers, Severity: High,
			Evidence: fmt.Sprintf("%s (owner %d:%d, mode %04o) is readable by every user of the host", f.Path, f.UID, f.GID, f.Mode.Perm()),
			Practice: practiceSecretStore, Fix: fmt.Sprintf("chmod o-rwx %s (and chown it to the container's user)", f.Path)})
	}
	if !f.ReadableByContainer {
		out = append(out, Finding{Deployment: dep, Node: n.Node, Check: CheckFileUnreadable, Severity: High,
			Evidence: fmt.Sprintf("%s (owner %d:%d, mode %04o) cannot be read by the container's user %q: Qdrant ignores it at its next start and runs with no API key", f.Path, f.UID, f.GID, f.Mode.Perm(), f.ContainerUser),
			Practice: practiceAPIKey, Fix: "chown the file to the container's user (user: \"UID:GID\") with mode 0600"})
	}
	return out
}

func auditLogOff(dep string, n NodeFacts) []Finding {
	if n.AuditLog {
		return nil
	}
	return []Finding{{Deployment: dep, Node: n.Node, Check: CheckAuditLogOff, Severity: Low,
		Evidence: "audit.enabled is off (neither the config file nor QDRANT__AUDIT__ENABLED turns it on): refused requests leave no trace",
		Practice: practiceLogging, Fix: "set audit.enabled: true (Qdrant >= 1.17) so denied requests are logged and can be watched"}}
}

func keyAge(d DeploymentFacts, now time.Time) []Finding {
	if d.MaxAge <= 0 || d.Admin.Fingerprint == "" || d.Admin.Since.IsZero() {
		return nil
	}
	age := now.Sub(d.Admin.Since)
	if age <= d.MaxAge {
		return nil
	}
	return []Finding{{Deployment: d.Name, Check: CheckKeyAge, Severity: Medium,
		Evidence: fmt.Sprintf("admin key %s is %s old, older than max_age %s", d.Admin.Fingerprint, age.Round(time.Second), d.MaxAge),
		Practice: practiceRotate, Fix: "rotate it (`rotator rotate`), and run the daemon so max_age is enforced"}}
}

func jwtWithoutExp(d DeploymentFacts) []Finding {
	var out []Finding
	for _, k := range d.Named {
		if k.JWT && k.Fingerprint != "" && k.Expires.IsZero() {
			out = append(out, Finding{Deployment: d.Name, Check: CheckJWTNoExp, Severity: Medium,
				Evidence: fmt.Sprintf("named key %s is a JWT (%s) without exp: it is valid until the admin key that signed it changes", k.Name, k.Fingerprint),
				Practice: practiceExpiry, Fix: "give the key a ttl (key_ttl or keys.<name>.ttl) and let the daemon re-mint it"})
		}
	}
	return out
}

func noReadOnlyKey(d DeploymentFacts) []Finding {
	if !d.ReadOnlyConsumer || d.ReadOnly.Fingerprint != "" {
		return nil
	}
	return []Finding{{Deployment: d.Name, Check: CheckNoReadOnlyKey, Severity: Medium,
		Evidence: "a read-only consumer is configured but Vault holds no read-only credential: it must be using the admin key",
		Practice: practiceLeast, Fix: "set read_only: rotate (or publish a read-only key) and point the read-only consumers at it"}}
}

// duplicateKeys compares the current records of every deployment by fingerprint: fingerprints are keyed HMACs under
// one secret per rotator, so equal fingerprints are equal keys.
func duplicateKeys(deps []DeploymentFacts) []Finding {
	type owner struct{ deployment, slot string }
	byFP := map[string][]owner{}
	var order []string
	add := func(d DeploymentFacts, slot, fp string) {
		if fp == "" {
			return
		}
		if _, seen := byFP[fp]; !seen {
			order = append(order, fp)
		}
		byFP[fp] = append(byFP[fp], owner{d.Name, slot})
	}
	for _, d := range deps {
		add(d, "admin", d.Admin.Fingerprint)
		add(d, "read-only", d.ReadOnly.Fingerprint)
		for _, k := range d.Named {
			if !k.JWT {
				add(d, "key "+k.Name, k.Fingerprint)
			}
		}
	}
	reviewed := map[string]bool{}
	for _, d := range deps {
		reviewed[d.Name] = d.Reviewed
	}
	var out []Finding
	for _, fp := range order {
		owners := byFP[fp]
		var names []string
		for _, o := range owners {
			if !slices.Contains(names, o.deployment) {
				names = append(names, o.deployment)
			}
		}
		if len(names) < 2 {
			continue
		}
		var where []string
		for _, o := range owners {
			where = append(where, o.deployment+" ("+o.slot+")")
		}
		for _, name := range names {
			if !reviewed[name] {
				continue
			}
			out = append(out, Finding{Deployment: name, Check: CheckDuplicateKey, Severity: High,
				Evidence: fmt.Sprintf("key %s is current in %s", fp, strings.Join(where, ", ")),
				Practice: practiceEnvs, Fix: "rotate this deployment (`rotator rotate --deployment " + name + "`): each gets its own key"})
		}
	}
	return out
}

// consumerPolicies: a consumer policy should grant one path (one record), read only.
func consumerPolicies(ps []PolicyFacts) []Finding {
	var out []Finding
	for _, p := range ps {
		if p.Error != "" {
			out = append(out, Finding{Check: CheckPolicyUnreadable, Severity: Low,
				Evidence: fmt.Sprintf("could not read Vault policy %s: %s", p.Name, p.Error),
				Practice: practiceLeast, Fix: "let the rotator's token read sys/policy/" + p.Name + ", or review the policy by hand"})
			continue
		}
		var broad []string
		for _, path := range p.Paths {
			if strings.ContainsAny(path, "*+") {
				broad = append(broad, path)
			}
		}
		if len(p.Paths) > 1 || len(broad) > 0 {
			out = append(out, Finding{Check: CheckPolicyBroad, Severity: Medium,
				Evidence: fmt.Sprintf("Vault policy %s grants %d path(s): %s", p.Name, len(p.Paths), strings.Join(p.Paths, ", ")),
				Practice: practiceLeast, Fix: "grant a consumer one path, read only (see deploy/vault/qdrant-consumer-*.hcl)"})
		}
	}
	return out
}

func apiExposed(a APIFacts) []Finding {
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		host = a.Listen
	}
	if a.TLS || !beyondLoopback(host) {
		return nil
	}
	return []Finding{{Check: CheckAPIExposed, Severity: High,
		Evidence: fmt.Sprintf("the rotator's API listens on %s without TLS: its bearer tokens cross the network in clear", a.Listen),
		Practice: practiceTLS, Fix: "listen on 127.0.0.1 (daemon.listen) behind a TLS proxy, or set daemon.tls"}}
}
