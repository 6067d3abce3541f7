package config

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// DockerEngine says how to reach the Docker Engine of some nodes, as the docker CLI's DOCKER_HOST,
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH do. An unset host is the rotator's own DOCKER_* environment; a set host
// reads nothing of that environment.
type DockerEngine struct {
	// Host is unix:///path/docker.sock, tcp://host:port or ssh://[user@]host[:port][/socket-path].
	Host string `yaml:"host"`
	// TLSVerify (tcp:// only) talks TLS to the engine, verifying its certificate with cert_path/ca.pem and presenting
	// cert_path/cert.pem and cert_path/key.pem.
	TLSVerify bool `yaml:"tls_verify"`
	// CertPath is the folder of ca.pem, cert.pem and key.pem (default ~/.docker).
	CertPath string `yaml:"cert_path"`
}

// CertDir is the folder of ca.pem, cert.pem and key.pem: CertPath, or ~/.docker as for the docker CLI.
func (e DockerEngine) CertDir() string {
	if e.CertPath != "" {
		return e.CertPath
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker")
}

// checkDocker checks the deployment's engines: its default (docker) and each container's (docker_hosts).
func (d Deployment) checkDocker(bad reporter, f string) {
	if d.Docker != nil {
		d.Docker.check(bad, f+".docker")
	}
	names := map[string]bool{}
	for _, n := range d.Containers {
		names[n] = true
	}
	for _, n := range sortedKeys(d.DockerHosts) {
		hf := f + ".docker_hosts." + label(n)
		if len(d.Containers) > 0 && !names[n] {
			bad(hf, "names no container of the deployment")
		}
		e := d.DockerHosts[n]
		if e.Host == "" {
			bad(hf+".host", "is required (leave the container out to use the deployment's engine)")
			continue
		}
		e.check(bad, hf)
	}
}

// check checks one engine address (f names its section).
func (e DockerEngine) check(bad reporter, f string) {
	if e.Host == "" {
		if e.TLSVerify || e.CertPath != "" {
			bad(f+".host", "is required with tls_verify or cert_path (without a host, the DOCKER_* environment says how to reach the engine)")
		}
		return
	}
	u, err := url.Parse(e.Host)
	if err != nil {
		bad(f+".host", "%q is not a URL", redactedHost(e.Host))
		return
	}
	shown := redactedHost(e.Host)
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			bad(f+".host", "%q: want unix:///absolute/path/to/docker.sock", shown)
		}
	case "tcp":
		if u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
			bad(f+".host", "%q: want tcp://host:port", shown)
		}
		if u.User != nil {
			bad(f+".host", "%q: a tcp:// engine takes no user", shown)
		}
	case "ssh":
		if u.Hostname() == "" {
			bad(f+".host", "%q: want ssh://[user@]host[:port][/socket-path]", shown)
		}
		if _, hasPassword := u.User.Password(); hasPassword {
			bad(f+".host", "%q: a password in the address is refused; log in with an ssh key (ssh-agent or ~/.ssh/config)", shown)
		}
	default:
		bad(f+".host", "%q: want a unix://, tcp:// or ssh:// address", shown)
		return
	}
	if u.RawQuery != "" || u.Fragment != "" {
		bad(f+".host", "%q: no query or fragment", shown)
	}
	if u.Scheme != "tcp" {
		if e.TLSVerify || e.CertPath != "" {
			bad(f+".tls_verify", "is for tcp:// engines (a %s:// engine is reached without TLS)", u.Scheme)
		}
		return
	}
	if !e.TLSVerify {
		if e.CertPath != "" {
			bad(f+".cert_path", "is set without tls_verify: true; the rotator does not talk TLS to an engine without verifying it")
		}
		return
	}
	dir := e.CertDir()
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := checkCAFile(ca); err != nil {
		bad(f+".cert_path", "ca.pem: %v", err)
	}
	if err := checkKeyPair(cert, key); err != nil {
		bad(f+".cert_path", "%v", err)
	}
}

// redactedHost is an engine address as a message shows it: without a password it may hold.
func redactedHost(host string) string {
	u, err := url.Parse(host)
	if err != nil {
		if at := strings.LastIndex(host, "@"); at >= 0 {
			return "***" + host[at:]
		}
		return host
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
