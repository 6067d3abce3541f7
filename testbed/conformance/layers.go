package conformance

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// nodeCannotRead returns a user to run a node as and the owner of a file that user cannot read. As root: uid and
// gid 1000 and a root-owned 0600 file, the setup of Qdrant's Helm chart (runAsUser 1000, local.yaml from a Secret,
// qdrant.md §2, §11). Otherwise the test's own user and a file of mode 0000, which its owner cannot read either.
func nodeCannotRead() (*UserID, FileOwner) {
	if os.Geteuid() == 0 {
		return &UserID{UID: 1000, GID: 1000}, FileOwner{UID: 0, GID: 0, Mode: 0o600}
	}
	uid, gid := os.Geteuid(), os.Getegid()
	return &UserID{UID: uid, GID: gid}, FileOwner{UID: uid, GID: gid, Mode: 0}
}

// expectLogged checks the node's output has a line containing text.
func expectLogged(t *testing.T, n Node, text string) {
	t.Helper()
	if logs := n.Logs(); !strings.Contains(logs, text) {
		t.Errorf("output does not contain %q:\n%s", text, redact(logs))
	}
}

// layersGroup: what happens to a config file layer that cannot be used (qdrant.md §2: every file layer is
// optional; one that cannot be resolved for any reason is dropped silently, one that is read but does not parse
// aborts the start).
func layersGroup() group {
	return group{name: "layers", cases: []testCase{
		{name: "unreadable_local_yaml_is_ignored_node_starts_open", spec: "§2 (unreadable optional layer silently dropped: no API key)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			user, owner := nodeCannotRead()
			n, c := startClient(t, f, Setup{
				Env:    map[string]string{"RUN_MODE": runMode},
				Files:  map[string]string{"config/local.yaml": apiKeyFile(k)},
				Owners: map[string]FileOwner{"config/local.yaml": owner},
				User:   user,
			})
			expectOpen(t, c)
			expectStatus(t, "the key of the unreadable file", c.do(t, "GET", "/collections", "", apiKey(k)), http.StatusOK)
			if logs := n.Logs(); strings.Contains(logs, "config/local") {
				t.Errorf("output mentions config/local, want nothing logged for it:\n%s", redact(logs))
			}
		}},
		{name: "unreadable_local_yaml_keeps_the_other_layers", spec: "§2 (only the unreadable layer is dropped)", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			user, owner := nodeCannotRead()
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{
					"config/" + runMode + ".yaml": apiKeyFile(k1),
					"config/local.yaml":           apiKeyFile(k2),
				},
				Owners: map[string]FileOwner{"config/local.yaml": owner},
				User:   user,
			})
			expectAuthOn(t, c)
			expectWrites(t, c, "api_key of the readable RUN_MODE file", k1)
			expectRejected(t, c, "api_key of the unreadable config/local.yaml", k2)
		}},
		{name: "unreadable_run_mode_file_logged_as_not_found", spec: "§2 (layers 2/3: \"Config file not found\", also when unreadable)", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			user, owner := nodeCannotRead()
			n, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{
					"config/config.yaml":          apiKeyFile(k1),
					"config/" + runMode + ".yaml": apiKeyFile(k2),
				},
				Owners: map[string]FileOwner{"config/" + runMode + ".yaml": owner},
				User:   user,
			})
			expectWrites(t, c, "api_key of config/config.yaml", k1)
			expectRejected(t, c, "api_key of the unreadable RUN_MODE file", k2)
			expectLogged(t, n, "Config file not found: config/"+runMode)
		}},
		{name: "unreadable_config_path_only_logged", spec: "§2 layer 6 (optional; error logged, start goes on)", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			user, owner := nodeCannotRead()
			n, c := startClient(t, f, Setup{
				Env:    map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": k1},
				Files:  map[string]string{"custom/extra.yaml": yamlService(map[string]any{"read_only_api_key": k2})},
				Owners: map[string]FileOwner{"custom/extra.yaml": owner},
				User:   user,
				Args:   []string{"--config-path", "custom/extra.yaml"},
			})
			expectWrites(t, c, "api_key from env", k1)
			expectRejected(t, c, "read_only_api_key of the unreadable --config-path file", k2)
			expectLogged(t, n, "Config file via --config-path is not found: custom/extra.yaml")
		}},
		{name: "directory_named_local_yaml_is_skipped", spec: "§2 (a directory is not a layer; the .yml name is tried next)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{
					"config/local.yaml/placeholder": apiKeyFile(newKey(t)),
					"config/local.yml":              apiKeyFile(k),
				},
			})
			expectAuthOn(t, c)
			expectWrites(t, c, "api_key from config/local.yml next to a directory config/local.yaml", k)
		}},
		{name: "extensionless_local_file_hides_local_yaml", spec: "§2 (config-rs: an exact name of no yaml extension fails the optional layer)", run: func(t *testing.T, f *fixture) {
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{
					"config/local":      apiKeyFile(newKey(t)),
					"config/local.yaml": apiKeyFile(newKey(t)),
				},
			})
			expectOpen(t, c)
		}},
		{name: "bad_bytes_do_not_drop_a_layer", spec: "§2 (config-rs 0.15.22 reads a layer lossily, BOM skipped)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env:   map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{"config/local.yaml": "\xef\xbb\xbf# caf\xe9 \xff\n" + apiKeyFile(k)},
			})
			expectAuthOn(t, c)
			expectWrites(t, c, "api_key from a config/local.yaml with invalid UTF-8 in a comment", k)
		}},
		{name: "invalid_yaml_in_readable_layer_fails_start", spec: "§2 (a parse error in a readable file aborts startup)", run: func(t *testing.T, f *fixture) {
			code, _ := f.target.StartFailing(t, Setup{
				Env:   map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": newKey(t)},
				Files: map[string]string{"config/local.yaml": "service: [unclosed\n"},
			})
			if code == 0 {
				t.Errorf("invalid YAML in config/local.yaml: exit code 0, want non-zero")
			}
		}},
		{name: "two_yaml_documents_fail_start", spec: "§2 (parse error: config-rs wants one YAML document)", run: func(t *testing.T, f *fixture) {
			code, _ := f.target.StartFailing(t, Setup{
				Env:   map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{"config/local.yaml": apiKeyFile(newKey(t)) + "---\n" + apiKeyFile(newKey(t))},
			})
			if code == 0 {
				t.Errorf("two YAML documents in config/local.yaml: exit code 0, want non-zero")
			}
		}},
	}}
}
