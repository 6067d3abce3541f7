package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerEngines: each node's Docker Engine (docker, docker_hosts) is checked, and every message names its field.
func TestDockerEngines(t *testing.T) {
	certs := t.TempDir()
	ca, _ := os.ReadFile("testdata/ca.pem")
	if err := os.WriteFile(filepath.Join(certs, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	base := "deployments:\n  - name: prod\n    mode: env\n    containers: [q1, q2]\n"
	good := base + "    docker: {host: \"unix:///run/other.sock\"}\n" +
		"    docker_hosts:\n      q2: {host: \"ssh://ops@10.0.0.7:2222\"}\n"
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Deployments[0]; d.Docker.Host != "unix:///run/other.sock" || d.DockerHosts["q2"].Host != "ssh://ops@10.0.0.7:2222" {
		t.Errorf("engines = %+v, %+v", d.Docker, d.DockerHosts)
	}
	if dir := (DockerEngine{Host: "tcp://h:2376", TLSVerify: true}).CertDir(); !strings.HasSuffix(dir, "/.docker") {
		t.Errorf("default cert dir %q, want ~/.docker", dir)
	}
	f := "deployments[0] (prod)."
	cases := []struct{ name, yaml, want string }{
		{"bad scheme", base + "    docker: {host: \"http://h:2375\"}\n", f + `docker.host: "http://h:2375": want a unix://, tcp:// or ssh:// address`},
		{"relative socket", base + "    docker: {host: \"unix://run/d.sock\"}\n", f + `docker.host: "unix://run/d.sock": want unix:///absolute/path`},
		{"tcp without host", base + "    docker: {host: \"tcp://:2375\"}\n", f + `docker.host: "tcp://:2375": want tcp://host:port`},
		{"tls without host", base + "    docker: {tls_verify: true}\n", f + "docker.host: is required with tls_verify or cert_path"},
		{"tls on unix", base + "    docker: {host: \"unix:///d.sock\", tls_verify: true}\n", f + "docker.tls_verify: is for tcp:// engines"},
		{"cert_path without verify", base + "    docker: {host: \"tcp://h:2376\", cert_path: " + certs + "}\n", f + "docker.cert_path: is set without tls_verify"},
		{"tls files missing", base + "    docker_hosts:\n      q2: {host: \"tcp://h:2376\", tls_verify: true, cert_path: " + certs + "}\n",
			f + "docker_hosts.q2.cert_path: cert_file " + certs + "/cert.pem and key_file " + certs + "/key.pem: open"},
		{"ca missing", base + "    docker_hosts:\n      q2: {host: \"tcp://h:2376\", tls_verify: true, cert_path: /nonexistent}\n",
			f + "docker_hosts.q2.cert_path: ca.pem: open /nonexistent/ca.pem"},
		{"unknown container", base + "    docker_hosts:\n      q9: {host: \"unix:///d.sock\"}\n", f + "docker_hosts.q9: names no container of the deployment"},
		{"host missing", base + "    docker_hosts:\n      q2: {tls_verify: true}\n", f + "docker_hosts.q2.host: is required"},
		{"ssh password", base + "    docker_hosts:\n      q2: {host: \"ssh://ops:hunter2@h\"}\n", f + `docker_hosts.q2.host: "ssh://ops:xxxxx@h": a password in the address is refused`},
		{"unknown field", base + "    docker: {host: \"unix:///d.sock\", tls: true}\n", "field tls not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the message shows the password: %v", err)
			}
		})
	}
}
