package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckAndStartupAgree: `rotator check` refuses exactly what `rotator daemon` and `rotator rotate` refuse at
// start-up, with the same message naming the field, and exit code 2. Every case here was accepted by check and
// refused (or misbehaved) later before the one validation path; none needs Vault or Docker: all fail before
// anything is contacted.
func TestCheckAndStartupAgree(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeTestFile(t, dir, name, content) }
	write("blank.secret", "   \n")
	dep := "deployments:\n  - name: prod\n    mode: env\n    containers: [q0, q1]\n"
	cases := []struct{ name, yaml, want string }{
		{"cron out of range", dep + "    schedule: \"99 * * * *\"\n", `deployments[0] (prod).schedule: schedule "99 * * * *": end of range (99) above maximum (59)`},
		{"every 0s", dep + "    schedule: \"@every 0s\"\n", `deployments[0] (prod).schedule: "@every 0s" fires every 1s; scheduled rotations must be at least 1m0s apart`},
		{"every 30s", dep + "    schedule: \"@every 30s\"\n", `deployments[0] (prod).schedule: "@every 30s" fires every 30s`},
		{"ready_timeout 1ns", dep + "    ready_timeout: 1ns\n", "deployments[0] (prod).ready_timeout: 1ns is shorter than 1s"},
		{"stop_timeout 500ms", dep + "    stop_timeout: 500ms\n", "deployments[0] (prod).stop_timeout: 500ms is shorter than 1s"},
		{"empty file", "", "config file " + filepath.Join(dir, "empty file.yml") + " is empty"},
		{"container in two deployments", dep + "  - name: staging\n    mode: env\n    containers: [q1]\n",
			`deployments[1] (staging).containers[0]: container "q1" is also in deployment prod`},
		{"jwt key outlives no re-mint", dep + "    keys: {search: {read: true, ttl: 3m}}\n",
			"deployments[0] (prod).keys.search: ttl 3m0s is too short for the daemon to re-mint the JWT before it expires: want at least 4m30s"},
		{"blank webhook secret", "daemon:\n  webhooks: [{url: http://127.0.0.1:9/hook, secret_file: blank.secret}]\n" + dep,
			"daemon.webhooks[0].secret_file: file " + filepath.Join(dir, "blank.secret") + " is empty"},
		{"missing webhook secret", "daemon:\n  webhooks: [{url: http://127.0.0.1:9/hook, secret_file: none.secret}]\n" + dep,
			"daemon.webhooks[0].secret_file: open " + filepath.Join(dir, "none.secret")},
		{"listen without port", "daemon:\n  listen: \"127.0.0.1\"\n" + dep, `daemon.listen: "127.0.0.1": want host:port`},
		{"token env name", "daemon:\n  tokens: [{name: ops, role: admin, env: \"OPS TOKEN\"}]\n" + dep, `daemon.tokens[0].env: "OPS TOKEN" is not an environment variable name`},
	}
	env := func(string) string { return "" }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := write(tc.name+".yml", tc.yaml)
			var messages []string
			for _, args := range [][]string{
				{"check", "--config", path},
				{"daemon", "--config", path, "--listen", "127.0.0.1:0"},
				{"rotate", "--config", path},
			} {
				var out, errOut bytes.Buffer
				code := run(context.Background(), args, env, &out, &errOut)
				msg := strings.TrimPrefix(errOut.String(), "rotator "+args[0]+": ")
				if code != exitUsage || !strings.Contains(msg, tc.want) {
					t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", args[0], code, errOut.String(), exitUsage, tc.want)
				}
				messages = append(messages, msg)
			}
			if messages[0] != messages[1] || messages[0] != messages[2] {
				t.Errorf("check, daemon and rotate disagree:\n%q\n%q\n%q", messages[0], messages[1], messages[2])
			}
		})
	}
}
