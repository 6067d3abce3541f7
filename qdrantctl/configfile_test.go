package qdrantctl

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Keys of the right shapes: base64url keys of 43 characters and a JWT.
const (
	k1  = "Xq3vN8pLr2Tz5WcYb7HmK4sJd9FgA1eUo6BiE0nRtQy"
	k2  = "m_9Qz-Lw2Ex4Rc6Tv8Yb0Nu1Ip3Ao5Sd7Fg9Hj2Kl4Z"
	ro1 = "r0-Readonly_Key_aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	jwt = "eyJhbGciOiJIUzI1NiJ9.eyJhY2Nlc3MiOiJyIn0.c2lnbmF0dXJlX29mX3RoZV90b2tlbg"
)

// spliceCase is a hand-written file, the slots to set, and the exact bytes expected.
type spliceCase struct {
	name string
	in   string
	keys ConfigKeys
	want string
}

var spliceCases = []spliceCase{
	{
		name: "comments, blank lines and trailing comment spacing",
		in: "# Qdrant node 0, managed by hand and by the rotator\n# second header line\n\nlog_level: INFO\n\n\n" +
			"service:\n  # keep the REST port\n  http_port: 6333\n  api_key: " + k1 + "    # primary\n  enable_tls: false   # no TLS here\n\n" +
			"storage:\n  storage_path: ./storage # data\n",
		keys: ConfigKeys{APIKey: k1, AltAPIKey: k2},
		want: "# Qdrant node 0, managed by hand and by the rotator\n# second header line\n\nlog_level: INFO\n\n\n" +
			"service:\n  # keep the REST port\n  http_port: 6333\n  api_key: " + k1 + "    # primary\n  enable_tls: false   # no TLS here\n  alt_api_key: " + k2 + "\n\n" +
			"storage:\n  storage_path: ./storage # data\n",
	},
	{
		name: "promote: value replaced in place, alt line removed",
		in:   "service:\n  api_key: " + k1 + "    # primary\n  alt_api_key: " + k2 + "\n  http_port: 6333\n",
		keys: ConfigKeys{APIKey: k2},
		want: "service:\n  api_key: " + k2 + "    # primary\n  http_port: 6333\n",
	},
	{
		name: "CRLF stays CRLF",
		in:   "# windows\r\nservice:\r\n  api_key: " + k1 + "\r\n  http_port: 6333\r\n\r\nlog_level: INFO\r\n",
		keys: ConfigKeys{APIKey: k1, AltAPIKey: k2, JWTRBAC: true},
		want: "# windows\r\nservice:\r\n  api_key: " + k1 + "\r\n  http_port: 6333\r\n  alt_api_key: " + k2 + "\r\n  jwt_rbac: true\r\n\r\nlog_level: INFO\r\n",
	},
	{
		name: "4-space indentation",
		in:   "service:\n    http_port: 6333\n    api_key: " + k1 + "\nstorage:\n    storage_path: ./storage\n",
		keys: ConfigKeys{APIKey: k2, ReadOnlyAPIKey: ro1},
		want: "service:\n    http_port: 6333\n    api_key: " + k2 + "\n    read_only_api_key: " + ro1 + "\nstorage:\n    storage_path: ./storage\n",
	},
	{
		name: "quoted keys and values keep their quotes",
		in:   "service:\n  \"api_key\": \"" + k1 + "\"\n  'read_only_api_key': '" + ro1 + "'\n",
		keys: ConfigKeys{APIKey: k2, ReadOnlyAPIKey: jwt},
		want: "service:\n  \"api_key\": \"" + k2 + "\"\n  'read_only_api_key': '" + jwt + "'\n",
	},
	{
		name: "tabs around the value",
		in:   "service:\n  api_key:\t" + k1 + "\t# tabbed\n",
		keys: ConfigKeys{APIKey: k2},
		want: "service:\n  api_key:\t" + k2 + "\t# tabbed\n",
	},
	{
		name: "no service section: one is appended",
		in:   "# storage only\nstorage:\n    storage_path: ./storage\n# end\n",
		keys: ConfigKeys{APIKey: k1},
		want: "# storage only\nstorage:\n    storage_path: ./storage\n# end\n" + sectionMarker + "\n    api_key: " + k1 + "\n",
	},
	{
		name: "no service section and no final line ending",
		in:   "log_level: INFO",
		keys: ConfigKeys{APIKey: k1, JWTRBAC: true},
		want: "log_level: INFO\n" + sectionMarker + "\n  api_key: " + k1 + "\n  jwt_rbac: true",
	},
	{
		name: "the section the rotator added goes with its last key",
		in:   "log_level: INFO\n" + sectionMarker + "\n  api_key: " + k1 + "\n",
		keys: ConfigKeys{},
		want: "log_level: INFO\n",
	},
	{
		name: "empty file",
		in:   "",
		keys: ConfigKeys{APIKey: k1},
		want: sectionMarker + "\n  api_key: " + k1 + "\n",
	},
	{
		name: "comments only",
		in:   "# nothing yet\r\n",
		keys: ConfigKeys{APIKey: k1},
		want: "# nothing yet\r\n" + sectionMarker + "\r\n  api_key: " + k1 + "\r\n",
	},
	{
		name: "a bare document start",
		in:   "---\n",
		keys: ConfigKeys{APIKey: k1},
		want: "---\n" + sectionMarker + "\n  api_key: " + k1 + "\n",
	},
	{
		name: "empty service section (null)",
		in:   "service:   # keys below\nlog_level: INFO\n",
		keys: ConfigKeys{APIKey: k1, AltAPIKey: k2},
		want: "service:   # keys below\n  api_key: " + k1 + "\n  alt_api_key: " + k2 + "\nlog_level: INFO\n",
	},
	{
		name: "empty service section, indentation taken from the file",
		in:   "storage:\n    storage_path: ./s\nservice:\n",
		keys: ConfigKeys{APIKey: k1},
		want: "storage:\n    storage_path: ./s\nservice:\n    api_key: " + k1 + "\n",
	},
	{
		name: "last entry a nested mapping and a block scalar",
		in:   "service:\n  api_key: " + k1 + "\n  note: |\n    line one\n\n    # not a comment\n  tls:\n    cert: a.pem\n    # about the key\n    key: b.pem\n  # trailing comment of the section\n\nstorage: {}\n",
		keys: ConfigKeys{APIKey: k1, AltAPIKey: k2},
		want: "service:\n  api_key: " + k1 + "\n  note: |\n    line one\n\n    # not a comment\n  tls:\n    cert: a.pem\n    # about the key\n    key: b.pem\n  alt_api_key: " + k2 + "\n  # trailing comment of the section\n\nstorage: {}\n",
	},
	{
		name: "UTF-8 byte order mark and non-ASCII text",
		in:   "\ufeff# clé: überall\nservice:\n  \"é\": 1\n  api_key: " + k1 + " # clé\n",
		keys: ConfigKeys{APIKey: k2},
		want: "\ufeff# clé: überall\nservice:\n  \"é\": 1\n  api_key: " + k2 + " # clé\n",
	},
	{
		name: "slot removed from the middle, multi-line value",
		in:   "service:\n  alt_api_key:\n    " + k2 + "\n  api_key: " + k1 + "\n",
		keys: ConfigKeys{APIKey: k1},
		want: "service:\n  api_key: " + k1 + "\n",
	},
	{
		name: "last line without line ending",
		in:   "service:\n  api_key: " + k1,
		keys: ConfigKeys{APIKey: k1, AltAPIKey: k2},
		want: "service:\n  api_key: " + k1 + "\n  alt_api_key: " + k2,
	},
	{
		name: "jwt_rbac taken away, other spellings kept",
		in:   "service:\n  jwt_rbac: true\n  api_key: " + k1 + "\n",
		keys: ConfigKeys{APIKey: k1},
		want: "service:\n  api_key: " + k1 + "\n",
	},
	{
		name: "jwt_rbac on in another spelling is left alone",
		in:   "service:\n  jwt_rbac: yes # on\n  api_key: " + k1 + "\n",
		keys: ConfigKeys{APIKey: k2, JWTRBAC: true},
		want: "service:\n  jwt_rbac: yes # on\n  api_key: " + k2 + "\n",
	},
	{
		name: "slots set but empty stay while they stay off",
		in:   "service:\n  api_key: " + k1 + "\n  read_only_api_key: \"\"\n  jwt_rbac: false\n",
		keys: ConfigKeys{APIKey: k2},
		want: "service:\n  api_key: " + k2 + "\n  read_only_api_key: \"\"\n  jwt_rbac: false\n",
	},
	{
		name: "anchors, aliases, merge keys and flow mappings elsewhere",
		in:   "defaults: &d {log_level: INFO}\nother:\n  <<: *d\n  list: [1, 2]\n<<: *d\nservice:\n  api_key: " + k1 + "\n",
		keys: ConfigKeys{APIKey: k2},
		want: "defaults: &d {log_level: INFO}\nother:\n  <<: *d\n  list: [1, 2]\n<<: *d\nservice:\n  api_key: " + k2 + "\n",
	},
	{
		name: "a new key that would not read back plain is quoted on its new line",
		in:   "service:\n  http_port: 6333\n",
		keys: ConfigKeys{APIKey: "12345"},
		want: "service:\n  http_port: 6333\n  api_key: \"12345\"\n",
	},
	{
		name: "a kept key with a tab in it (fuzz crasher: refused as a new key)",
		in:   "service:\n api_key: 0\t0",
		keys: ConfigKeys{APIKey: "0\t0", AltAPIKey: "0", JWTRBAC: true},
		want: "service:\n api_key: 0\t0\n alt_api_key: \"0\"\n jwt_rbac: true",
	},
	{
		name: "indented top level",
		in:   "  log_level: INFO\n  storage:\n      path: x\n",
		keys: ConfigKeys{APIKey: k1},
		want: "  log_level: INFO\n  storage:\n      path: x\n  " + sectionMarker + "\n      api_key: " + k1 + "\n",
	},
}

func TestSpliceKeepsEveryOtherByte(t *testing.T) {
	for _, c := range spliceCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := spliceConfigKeys([]byte(c.in), c.keys)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Fatalf("got\n%q\nwant\n%q", got, c.want)
			}
			if keys, err := configKeysOf(got); err != nil || keys != c.keys {
				t.Errorf("read back %+v, %v", keys, err)
			}
			// Writing the original slots back gives back the original bytes whenever the edit only added or
			// changed slots (a rollback).
			orig, err := configKeysOf([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !removes(orig, c.keys) {
				back, err := spliceConfigKeys(got, orig)
				if err != nil {
					t.Fatalf("way back: %v", err)
				}
				if string(back) != c.in {
					t.Errorf("way back gives\n%q\nwant the original\n%q", back, c.in)
				}
			}
			// Applying the same slots again changes nothing.
			if again, err := spliceConfigKeys(got, c.keys); err != nil || string(again) != string(got) {
				t.Errorf("second application: %v\n%q", err, again)
			}
		})
	}
}

// removes says whether going from a to b takes a slot away.
func removes(a, b ConfigKeys) bool {
	return a.APIKey != "" && b.APIKey == "" || a.AltAPIKey != "" && b.AltAPIKey == "" ||
		a.ReadOnlyAPIKey != "" && b.ReadOnlyAPIKey == "" || a.JWTRBAC && !b.JWTRBAC
}

func TestSpliceRefuses(t *testing.T) {
	cases := []struct {
		name, in string
		keys     ConfigKeys
		want     string
	}{
		{"flow service section", "service: {api_key: " + k1 + "}\n", ConfigKeys{APIKey: k2}, "service section (line 1) is a flow mapping ({...}); write it as a block mapping"},
		{"empty flow service section", "service: {}\n", ConfigKeys{APIKey: k2}, "is a flow mapping"},
		{"flow top level", "{service: {api_key: " + k1 + "}}\n", ConfigKeys{APIKey: k2}, "the top level is a flow mapping"},
		{"service through an alias", "base: &b\n  api_key: " + k1 + "\nservice: *b\n", ConfigKeys{APIKey: k2}, "is an alias (*b)"},
		{"service anchored and aliased", "service: &s\n  api_key: " + k1 + "\nother: *s\n", ConfigKeys{APIKey: k2}, "an alias elsewhere refers to"},
		{"merge key in service", "base: &b {http_port: 1}\nservice:\n  <<: *b\n  api_key: " + k1 + "\n", ConfigKeys{APIKey: k2}, "merge key (<<, line 3)"},
		{"service only through a merge key", "base: &b\n  service:\n    api_key: " + k1 + "\n<<: *b\n", ConfigKeys{APIKey: k2}, "merge key (<<), which may bring in a service section"},
		{"several documents", "service:\n  api_key: " + k1 + "\n---\nlog_level: INFO\n", ConfigKeys{APIKey: k2}, "holds 2 YAML documents"},
		{"block scalar", "service:\n  api_key: |-\n    " + k1 + "\n", ConfigKeys{APIKey: k2}, "block scalar (| or >)"},
		{"folded block scalar", "service:\n  api_key: >-\n    " + k1 + "\n", ConfigKeys{APIKey: k2}, "block scalar (| or >)"},
		{"value over several lines", "service:\n  api_key: \"" + k1[:20] + "\n    " + k1[20:] + "\"\n", ConfigKeys{APIKey: k2}, "written over several lines"},
		{"escapes", "service:\n  api_key: \"\\x41" + k1[1:] + "\"\n", ConfigKeys{APIKey: k2}, "written with escapes"},
		{"anchored value", "service:\n  api_key: &k " + k1 + "\n", ConfigKeys{APIKey: k2}, "has an anchor or a tag"},
		{"tagged value", "service:\n  api_key: !!str " + k1 + "\n", ConfigKeys{APIKey: k2}, "has an anchor or a tag"},
		{"aliased value removed", "service:\n  alt_api_key: &k " + k2 + "\n  api_key: " + k1 + "\nx: *k\n", ConfigKeys{APIKey: k1}, "alias refers to"},
		{"duplicate service", "service:\n  api_key: " + k1 + "\nservice:\n  http_port: 1\n", ConfigKeys{APIKey: k2}, "service appears twice (lines 1 and 3)"},
		{"duplicate slot", "service:\n  api_key: " + k1 + "\n  api_key: " + k2 + "\n", ConfigKeys{APIKey: k2}, "service.api_key appears twice (lines 2 and 3)"},
		{"duplicate other key", "log_level: INFO\nlog_level: DEBUG\nservice:\n  api_key: " + k1 + "\n", ConfigKeys{APIKey: k2}, "already defined"},
		{"top level a list", "- a\n- b\n", ConfigKeys{APIKey: k2}, "the top level is not a mapping"},
		{"service null written out", "service: ~\n", ConfigKeys{APIKey: k2}, "service (line 1) is not a mapping"},
		{"empty key to set", "service:\n  api_key: " + k1 + "\n  alt_api_key: ''\n", ConfigKeys{APIKey: k1, AltAPIKey: k2}, "service.alt_api_key is set but empty (line 3)"},
		{"jwt_rbac off to turn on", "service:\n  api_key: " + k1 + "\n  jwt_rbac: false\n", ConfigKeys{APIKey: k1, JWTRBAC: true}, "service.jwt_rbac is set off (line 3); delete that line"},
		{"slot not a scalar", "service:\n  api_key: [" + k1 + "]\n", ConfigKeys{APIKey: k2}, "is not a single value"},
		{"lone carriage return", "service:\r  api_key: " + k1 + "\n", ConfigKeys{APIKey: k2}, "carriage return"},
		{"line separator", "# a\u2028b\nservice:\n  api_key: " + k1 + "\n", ConfigKeys{APIKey: k2}, "line or paragraph separator"},
		{"not UTF-8", "# caf\xe9\nservice:\n  api_key: " + k1 + "\n", ConfigKeys{APIKey: k2}, "not UTF-8"},
		{"UTF-16", "\xff\xfes\x00:\x00", ConfigKeys{APIKey: k2}, "not UTF-8"},
		{"tab indentation", "service:\n\tapi_key: " + k1 + "\n", ConfigKeys{APIKey: k2}, "parse: "},
		{"document end marker", "log_level: INFO\n...\n", ConfigKeys{APIKey: k2}, "document end marker (..., line 2)"},
		{"explicit key", "service:\n  ? api_key\n  : " + k1 + "\n", ConfigKeys{APIKey: k2}, "does not start its line"},
		{"plain value that would not read back", "service:\n  api_key: " + k1 + "\n", ConfigKeys{APIKey: "123"}, "put the current key in quotes"},
		{"current key not text", "service:\n  api_key: 12345\n", ConfigKeys{APIKey: k2}, "service.api_key (line 2) is not text but a int written plain"},
		{"new key with a line break", "service:\n", ConfigKeys{APIKey: "a\nb"}, "service.api_key has a line break"},
		{"empty section marked as the rotator's", sectionMarker + "\n", ConfigKeys{APIKey: k2}, "delete that line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := spliceConfigKeys([]byte(c.in), c.keys)
			if err == nil {
				t.Fatalf("accepted, gave\n%q", out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want one with %q", err, c.want)
			}
			for _, k := range []string{k1, k2, k1[:20], k1[20:]} {
				if strings.Contains(err.Error(), k) {
					t.Errorf("error shows a key: %v", err)
				}
			}
		})
	}
}

// writeFile writes content at path with an owner and mode.
func writeFile(t *testing.T, path, content string, uid, gid int, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// ownerMode returns a file's owner and permission bits.
func ownerMode(t *testing.T, path string) (int, int, os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return int(sys.Uid), int(sys.Gid), st.Mode().Perm()
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("this test changes file owners and needs root (the test machines run as root)")
	}
}

var rotatorOwns = FileOwner{UID: -1, GID: -1}

// TestWriteConfigKeysRoundTrip stages, rolls back, stages and promotes through the file system: the rollback gives
// back the original bytes, owner and mode stay, and nothing beside the file keeps a key.
func TestWriteConfigKeysRoundTrip(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "local.yaml")
	original := spliceCases[0].in
	writeFile(t, path, original, 1000, 1000, 0o640)
	// What older versions and a crash left: a copy holding a retired key, a temporary file.
	stale := []string{path + ".prev", filepath.Join(dir, ".local.yaml.tmp-123456")}
	for _, p := range stale {
		writeFile(t, p, "service:\n  api_key: "+ro1+"\n", 0, 0, 0o600)
	}
	check := func(step string, want ConfigKeys) string {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if keys, err := ReadConfigKeys(path); err != nil || keys != want {
			t.Errorf("%s: read back %+v, %v", step, keys, err)
		}
		if uid, gid, mode := ownerMode(t, path); uid != 1000 || gid != 1000 || mode != 0o640 {
			t.Errorf("%s: owner %d:%d mode %04o, want 1000:1000 0640", step, uid, gid, mode)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Errorf("%s: the folder holds %v, want local.yaml alone", step, entries)
		}
		return string(data)
	}
	staged := ConfigKeys{APIKey: k1, AltAPIKey: k2}
	if err := WriteConfigKeys(path, staged, rotatorOwns); err != nil {
		t.Fatal(err)
	}
	if got := check("staged", staged); got != spliceCases[0].want {
		t.Errorf("staged file\n%q\nwant\n%q", got, spliceCases[0].want)
	}
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: k1}, rotatorOwns); err != nil {
		t.Fatal(err)
	}
	if got := check("rolled back", ConfigKeys{APIKey: k1}); got != original {
		t.Errorf("rollback gives\n%q\nwant the original\n%q", got, original)
	}
	if err := WriteConfigKeys(path, staged, rotatorOwns); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: k2}, rotatorOwns); err != nil {
		t.Fatal(err)
	}
	if got := check("promoted", ConfigKeys{APIKey: k2}); got != strings.Replace(original, k1, k2, 1) {
		t.Errorf("promoted file\n%q\nwant the original with the new key", got)
	}
}

func TestWriteConfigKeysRefusalLeavesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.yaml")
	const content = "service: {api_key: old}\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteConfigKeys(path, ConfigKeys{APIKey: k2}, rotatorOwns)
	if err == nil || !strings.Contains(err.Error(), "rewrite "+path+": the service section (line 1) is a flow mapping") {
		t.Errorf("error = %v, want a refusal naming the file and the reason", err)
	}
	if got, _ := os.ReadFile(path); string(got) != content {
		t.Errorf("refused file changed to %q", got)
	}
}

func TestWriteConfigKeysNewFile(t *testing.T) {
	needRoot(t)
	path := filepath.Join(t.TempDir(), "local.yaml")
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: k1}, FileOwner{UID: 1000, GID: 1000}); err != nil {
		t.Fatal(err)
	}
	if uid, gid, mode := ownerMode(t, path); uid != 1000 || gid != 1000 || mode != 0o600 {
		t.Errorf("new file: owner %d:%d mode %04o, want 1000:1000 0600", uid, gid, mode)
	}
	if keys, err := ReadConfigKeys(path); err != nil || keys != (ConfigKeys{APIKey: k1}) {
		t.Errorf("read back %+v, %v", keys, err)
	}
}

func TestWriteConfigKeysFollowsASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.yaml")
	if err := os.WriteFile(target, []byte("service:\n  api_key: "+k1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "local.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfigKeys(link, ConfigKeys{APIKey: k2}, rotatorOwns); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v", err)
	}
	if keys, _ := ReadConfigKeys(target); keys.APIKey != k2 {
		t.Error("the link's target did not get the new key")
	}
}

func TestJWTRBACIsABoolean(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.yaml")
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: k1, JWTRBAC: true}, rotatorOwns); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !strings.Contains(string(got), "jwt_rbac: true\n") || strings.Contains(string(got), `"true"`) {
		t.Errorf("jwt_rbac is not written as a YAML boolean:\n%s", got)
	}
	if keys, _ := ReadConfigKeys(path); !keys.JWTRBAC {
		t.Error("jwt_rbac not read back")
	}
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: k1}, rotatorOwns); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); strings.Contains(string(got), "jwt_rbac") {
		t.Errorf("jwt_rbac off should remove the setting:\n%s", got)
	}
}

func TestConfigKeysErrorsNameTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("- a list\n- not a mapping\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadConfigKeys(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error = %v, want one naming %s", err, path)
	}
	if err := WriteConfigKeys(path, ConfigKeys{APIKey: "k"}, rotatorOwns); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a mapping") {
		t.Errorf("error = %v, want one naming the file and 'not a mapping'", err)
	}
}

func TestContainerUserCanRead(t *testing.T) {
	cases := []struct {
		user     string
		uid, gid int
		mode     os.FileMode
		want     bool
	}{
		{"", 1000, 1000, 0o000, true},
		{"root", 1000, 1000, 0o000, true},
		{"0:0", 1000, 1000, 0o000, true},
		{"1000", 1000, 50, 0o600, true},
		{"1000", 1000, 50, 0o040, false}, // the owner's bits apply to the owner, even if the group's would allow
		{"1000", 0, 0, 0o600, false},
		{"1000", 0, 0, 0o640, false}, // group not given: it may not be 0
		{"1000", 0, 0, 0o604, false}, // ... or it may be 0, whose bits forbid
		{"1000", 0, 0, 0o644, true},
		{"1000:1000", 0, 1000, 0o640, true},
		{"1000:1000", 0, 1000, 0o604, false},
		{"1000:100", 0, 1000, 0o640, false},
		{"1000:100", 0, 1000, 0o644, true},
		{"1000:1000", 1000, 1000, 0o600, true},
		{"1000:users", 0, 100, 0o640, false},
		{"qdrant", 1000, 1000, 0o600, false}, // a name: anyone, so everybody's bits must allow
		{"qdrant", 1000, 1000, 0o644, true},
		{"qdrant:qdrant", 0, 0, 0o604, false},
		{"qdrant", 0, 0, 0o444, true},
	}
	for _, c := range cases {
		got := parseContainerUser(c.user).canRead(fileAttrs{uid: c.uid, gid: c.gid, mode: c.mode})
		if got != c.want {
			t.Errorf("user %q, file %d:%d %04o: can read = %v, want %v", c.user, c.uid, c.gid, c.mode, got, c.want)
		}
	}
}

func TestWriteNodeConfigRefusesAFileTheContainerCannotRead(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "local.yaml")
	content := "service:\n  api_key: " + k1 + "\n"
	writeFile(t, path, content, 0, 0, 0o600)
	err := writeNodeConfig(path, "1000:1000", ConfigKeys{APIKey: k1, AltAPIKey: k2})
	want := path + " (owner 0:0, mode 0600) cannot be read by the container's user \"1000:1000\""
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chown 1000:1000 "+path) {
		t.Fatalf("error = %v, want %q and how to fix it", err, want)
	}
	if got, _ := os.ReadFile(path); string(got) != content {
		t.Errorf("the file changed although refused:\n%s", got)
	}
	err = writeNodeConfig(path, "qdrant", ConfigKeys{APIKey: k2})
	if err == nil || !strings.Contains(err.Error(), "a name the host cannot resolve") || !strings.Contains(err.Error(), "chmod a+r "+path) {
		t.Errorf("error = %v, want the unknown name explained", err)
	}

	// Given to the container's user, the file is rewritten and stays its.
	if err := os.Chown(path, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := writeNodeConfig(path, "1000:1000", ConfigKeys{APIKey: k2}); err != nil {
		t.Fatal(err)
	}
	if uid, gid, mode := ownerMode(t, path); uid != 1000 || gid != 1000 || mode != 0o600 {
		t.Errorf("owner %d:%d mode %04o, want 1000:1000 0600", uid, gid, mode)
	}

	// A new file is given to the container's user.
	fresh := filepath.Join(dir, "new.yaml")
	if err := writeNodeConfig(fresh, "1000:1000", ConfigKeys{APIKey: k2}); err != nil {
		t.Fatal(err)
	}
	if uid, gid, mode := ownerMode(t, fresh); uid != 1000 || gid != 1000 || mode != 0o600 {
		t.Errorf("new file: owner %d:%d mode %04o, want 1000:1000 0600", uid, gid, mode)
	}
	if err := writeNodeConfig(filepath.Join(dir, "named.yaml"), "qdrant", ConfigKeys{APIKey: k2}); err == nil {
		t.Error("created a file a named user may not read")
	}
	if _, err := os.Stat(filepath.Join(dir, "named.yaml")); err == nil {
		t.Error("the refused file was created")
	}
}
