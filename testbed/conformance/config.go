package conformance

import (
	"net/http"
	"testing"
	"time"
)

// runMode is the RUN_MODE the config cases set explicitly: the official image sets RUN_MODE=production and a
// plain binary defaults to development, so a case that depends on the RUN_MODE file names it itself.
const runMode = "conftest"

// startClient starts a node for one case and returns a client for it.
func startClient(t *testing.T, f *fixture, s Setup) (Node, *client) {
	t.Helper()
	n := f.target.Start(t, s)
	return n, nodeClient(n)
}

func apiKeyFile(key string) string { return yamlService(map[string]any{"api_key": key}) }

// configGroup: the file layers and their order (qdrant.md §2).
func configGroup() group {
	return group{name: "config", cases: []testCase{
		{name: "config_yaml_layer_is_read", spec: "§2 layer 2", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env:   map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{"config/config.yaml": apiKeyFile(k)},
			})
			expectAuthOn(t, c)
			expectWrites(t, c, "api_key from config/config.yaml", k)
		}},
		{name: "run_mode_file_overrides_config_yaml", spec: "§2 layers 2<3", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{
					"config/config.yaml":          apiKeyFile(k1),
					"config/" + runMode + ".yaml": apiKeyFile(k2),
				},
			})
			expectWrites(t, c, "api_key from the RUN_MODE file", k2)
			expectRejected(t, c, "api_key from config/config.yaml (overridden)", k1)
		}},
		{name: "run_mode_selects_the_file", spec: "§2 layer 3", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": "modetwo"},
				Files: map[string]string{
					"config/modeone.yaml": apiKeyFile(k1),
					"config/modetwo.yaml": apiKeyFile(k2),
				},
			})
			expectWrites(t, c, "api_key from config/$RUN_MODE.yaml", k2)
			expectRejected(t, c, "api_key from the file of another mode", k1)
		}},
		{name: "local_yaml_overrides_run_mode_file", spec: "§2 layers 3<4", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{
					"config/" + runMode + ".yaml": apiKeyFile(k1),
					"config/local.yaml":           apiKeyFile(k2),
				},
			})
			expectWrites(t, c, "api_key from config/local.yaml", k2)
			expectRejected(t, c, "api_key from the RUN_MODE file (overridden)", k1)
		}},
		{name: "local_yml_extension_is_read", spec: "§2 (yaml format: .yaml/.yml)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env:   map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{"config/local.yml": apiKeyFile(k)},
			})
			expectAuthOn(t, c)
			expectWrites(t, c, "api_key from config/local.yml", k)
		}},
		{name: "config_path_overrides_local_yaml", spec: "§2 layers 4<6", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{
					"config/local.yaml": apiKeyFile(k1),
					"custom/extra.yaml": apiKeyFile(k2),
				},
				Args: []string{"--config-path", "custom/extra.yaml"},
			})
			expectWrites(t, c, "api_key from the --config-path file", k2)
			expectRejected(t, c, "api_key from config/local.yaml (overridden)", k1)
		}},
		{name: "env_overrides_config_path", spec: "§2 layers 6<7", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			_, c := startClient(t, f, Setup{
				Env:   map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": k2},
				Files: map[string]string{"custom/extra.yaml": apiKeyFile(k1)},
				Args:  []string{"--config-path", "custom/extra.yaml"},
			})
			expectWrites(t, c, "api_key from QDRANT__SERVICE__API_KEY", k2)
			expectRejected(t, c, "api_key from the --config-path file (overridden)", k1)
		}},
		{name: "env_overrides_local_yaml", spec: "§2 layers 4<7", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			_, c := startClient(t, f, Setup{
				Env:   map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": k2},
				Files: map[string]string{"config/local.yaml": apiKeyFile(k1)},
			})
			expectWrites(t, c, "api_key from env", k2)
			expectRejected(t, c, "api_key from config/local.yaml (overridden by env)", k1)
		}},
		{name: "layers_merge_key_by_key", spec: "§2 (merged key-by-key)", run: func(t *testing.T, f *fixture) {
			ks := keySet{api: newKey(t), alt: newKey(t), readOnly: newKey(t)}
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{
					"config/config.yaml":          apiKeyFile(ks.api),
					"config/" + runMode + ".yaml": yamlService(map[string]any{"read_only_api_key": ks.readOnly}),
					"config/local.yaml":           yamlService(map[string]any{"alt_api_key": ks.alt}),
					"custom/extra.yaml":           yamlService(map[string]any{"jwt_rbac": true}),
				},
				Args: []string{"--config-path", "custom/extra.yaml"},
			})
			expectWrites(t, c, "api_key from config.yaml", ks.api)
			expectWrites(t, c, "alt_api_key from local.yaml", ks.alt)
			expectReadOnly(t, c, "read_only_api_key from the RUN_MODE file", ks.readOnly)
			tok := hs256(t, ks.alt, map[string]any{"exp": expIn(time.Hour)})
			expectWrites(t, c, "JWT signed with alt_api_key (jwt_rbac from --config-path)", tok)
		}},
		{name: "missing_optional_files_are_fine", spec: "§2 (missing files 2/3 only warn)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env: map[string]string{"RUN_MODE": "no_such_mode", "QDRANT__SERVICE__API_KEY": k},
			})
			expectAuthOn(t, c)
			expectWrites(t, c, "api_key from env with no config files", k)
		}},
		{name: "missing_config_path_only_logged", spec: "§2 layer 6 (missing: error logged, start goes on)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env:  map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": k},
				Args: []string{"--config-path", "custom/does-not-exist.yaml"},
			})
			expectAuthOn(t, c)
			expectWrites(t, c, "api_key from env with a missing --config-path file", k)
		}},
		{name: "bad_typed_value_in_file_fails_start", spec: "§2 (deserialisation errors abort startup)", run: func(t *testing.T, f *fixture) {
			code, _ := f.target.StartFailing(t, Setup{
				Env:   map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{"config/local.yaml": "service:\n  jwt_rbac: maybe\n"},
			})
			if code == 0 {
				t.Errorf("jwt_rbac: maybe in config/local.yaml: exit code 0, want non-zero")
			}
		}},
	}}
}

// envGroup: QDRANT__ environment variables (qdrant.md §1, §2).
func envGroup() group {
	return group{name: "env", cases: []testCase{
		{name: "env_api_key", spec: "§2 env mapping", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{Env: map[string]string{"QDRANT__SERVICE__API_KEY": k}})
			expectAuthOn(t, c)
			expectWrites(t, c, "QDRANT__SERVICE__API_KEY", k)
			expectRejected(t, c, "a wrong key", newKey(t))
		}},
		{name: "env_names_are_case_insensitive", spec: "§2 (whole name lower-cased)", run: func(t *testing.T, f *fixture) {
			for _, name := range []string{"qdrant__service__api_key", "Qdrant__Service__Api_Key"} {
				t.Run(name, func(t *testing.T) {
					k := newKey(t)
					_, c := startClient(t, f, Setup{Env: map[string]string{name: k}})
					expectAuthOn(t, c)
					expectWrites(t, c, name, k)
				})
			}
		}},
		{name: "env_nesting_read_only_and_alt", spec: "§2 (__ becomes .)", run: func(t *testing.T, f *fixture) {
			ks := keySet{api: newKey(t), alt: newKey(t), readOnly: newKey(t)}
			_, c := startClient(t, f, Setup{Env: map[string]string{
				"QDRANT__SERVICE__API_KEY":           ks.api,
				"QDRANT__SERVICE__ALT_API_KEY":       ks.alt,
				"QDRANT__SERVICE__READ_ONLY_API_KEY": ks.readOnly,
			}})
			expectWrites(t, c, "QDRANT__SERVICE__ALT_API_KEY", ks.alt)
			expectReadOnly(t, c, "QDRANT__SERVICE__READ_ONLY_API_KEY", ks.readOnly)
		}},
		{name: "env_jwt_rbac_true_string", spec: "§2 (\"true\" converted at deserialisation)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{Env: map[string]string{
				"QDRANT__SERVICE__API_KEY":  k,
				"QDRANT__SERVICE__JWT_RBAC": "true",
			}})
			tok := hs256(t, k, map[string]any{"exp": expIn(time.Hour), "access": "r"})
			expectReadOnly(t, c, "JWT access r with jwt_rbac from env", tok)
		}},
		{name: "env_all_keys_empty_means_no_auth", spec: "§1 (empty key = unset; all empty = no auth)", run: func(t *testing.T, f *fixture) {
			_, c := startClient(t, f, Setup{Env: map[string]string{
				"QDRANT__SERVICE__API_KEY":           "",
				"QDRANT__SERVICE__ALT_API_KEY":       "",
				"QDRANT__SERVICE__READ_ONLY_API_KEY": "",
			}})
			expectNoAuth(t, c)
		}},
		{name: "env_empty_key_overrides_file_key", spec: "§2 (ignore_empty not set: \"\" wins, then treated as unset)", run: func(t *testing.T, f *fixture) {
			k := newKey(t)
			_, c := startClient(t, f, Setup{
				Env:   map[string]string{"RUN_MODE": runMode, "QDRANT__SERVICE__API_KEY": ""},
				Files: map[string]string{"config/local.yaml": apiKeyFile(k)},
			})
			expectNoAuth(t, c)
		}},
		{name: "empty_api_key_with_read_only_key", spec: "§1, §3.1 (empty api_key unset; empty api-key header matches nothing)", run: func(t *testing.T, f *fixture) {
			ro := newKey(t)
			_, c := startClient(t, f, Setup{Env: map[string]string{
				"QDRANT__SERVICE__API_KEY":           "",
				"QDRANT__SERVICE__READ_ONLY_API_KEY": ro,
			}})
			expectAuthOn(t, c)
			expectReadOnly(t, c, "read_only_api_key", ro)
			expectPlain(t, "empty api-key header", c.do(t, "GET", "/collections", "", apiKey("")), http.StatusUnauthorized, msgInvalidKey)
		}},
		{name: "env_bad_bool_enable_tls_fails_start", spec: "§2 (deserialisation errors abort startup)", run: func(t *testing.T, f *fixture) {
			code, _ := f.target.StartFailing(t, Setup{Env: map[string]string{"QDRANT__SERVICE__ENABLE_TLS": "maybe"}})
			if code == 0 {
				t.Errorf("QDRANT__SERVICE__ENABLE_TLS=maybe: exit code 0, want non-zero")
			}
		}},
		{name: "env_bad_bool_jwt_rbac_fails_start", spec: "§2 (deserialisation errors abort startup)", run: func(t *testing.T, f *fixture) {
			code, _ := f.target.StartFailing(t, Setup{Env: map[string]string{
				"QDRANT__SERVICE__API_KEY":  newKey(t),
				"QDRANT__SERVICE__JWT_RBAC": "maybe",
			}})
			if code == 0 {
				t.Errorf("QDRANT__SERVICE__JWT_RBAC=maybe: exit code 0, want non-zero")
			}
		}},
	}}
}

// reloadGroup: keys are read once at start (qdrant.md §2 "Hot reload: none").
func reloadGroup() group {
	return group{name: "reload", cases: []testCase{
		{name: "keys_read_once_at_start", spec: "§2 hot reload: none", run: func(t *testing.T, f *fixture) {
			k1, k2 := newKey(t), newKey(t)
			n, c := startClient(t, f, Setup{
				Env:   map[string]string{"RUN_MODE": runMode},
				Files: map[string]string{"config/local.yaml": apiKeyFile(k1)},
			})
			expectWrites(t, c, "old key before the file changes", k1)
			n.WriteFile(t, "config/local.yaml", apiKeyFile(k2))
			time.Sleep(500 * time.Millisecond)
			expectWrites(t, c, "old key after the file changed, before restart", k1)
			expectRejected(t, c, "new key before restart", k2)
			if code := n.Stop(t, true); code != 0 {
				t.Errorf("SIGTERM exit code %d, want 0", code)
			}
			n.Restart(t)
			expectWrites(t, c, "new key after restart", k2)
			expectRejected(t, c, "old key after restart", k1)
		}},
	}}
}
