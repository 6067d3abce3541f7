package conformance

import (
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const standinPkg = "github.com/qdrantrotator/rotator/testbed/cmd/qdrant-standin"

var standin struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if standin.dir != "" {
		os.RemoveAll(standin.dir)
	}
	os.Exit(code)
}

// standinBinary builds the stand-in once per test binary (CGO_ENABLED=0) and returns its path; QDRANT_STANDIN_BIN
// names a prebuilt binary to use instead. A build failure fails the test: the stand-in lives in this tree, so it
// is never skipped.
func standinBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("QDRANT_STANDIN_BIN"); bin != "" {
		return bin
	}
	standin.once.Do(func() {
		standin.dir, standin.err = os.MkdirTemp("", "qdrant-standin-")
		if standin.err != nil {
			return
		}
		standin.bin = filepath.Join(standin.dir, "qdrant-standin")
		// Nodes run as another user (Setup.User) must reach the binary.
		if standin.err = os.Chmod(standin.dir, 0o755); standin.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", standin.bin, standinPkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		standin.err, standin.out = err, string(out)
	})
	if standin.err != nil {
		t.Fatalf("build %s: %v\n%s", standinPkg, standin.err, standin.out)
	}
	return standin.bin
}

// TestCaseCount keeps the suite from silently shrinking below MinCases and its names unique.
func TestCaseCount(t *testing.T) {
	names := Cases()
	if len(names) < MinCases {
		t.Errorf("suite has %d cases, want at least %d", len(names), MinCases)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("case name %q is used twice", n)
		}
		seen[n] = true
	}
}

// TestStandinProcess runs the whole conformance suite against the stand-in run as a plain process.
func TestStandinProcess(t *testing.T) {
	bin := standinBinary(t)
	ran := Run(t, NewProcessTarget(bin))

	want := 0
	for _, c := range Cases() {
		if matchesRunFilter(t.Name() + "/" + c) {
			want++
		}
	}
	skip := flag.Lookup("test.skip")
	if skip == nil || skip.Value.String() == "" {
		if ran != want {
			t.Errorf("%d cases ran, want %d", ran, want)
		}
	}
	if want == len(Cases()) && ran < MinCases {
		t.Errorf("only %d cases ran, want at least %d", ran, MinCases)
	}
	t.Logf("%d conformance cases ran against %s", ran, filepath.Base(bin))
}

// TestStandinRunModeDefault: without RUN_MODE the development file is read (qdrant.md §2 layer 3). The official
// image sets RUN_MODE=production and a Target cannot unset it, so this fact is checked on the plain process only.
func TestStandinRunModeDefault(t *testing.T) {
	target := NewProcessTarget(standinBinary(t))
	k := newKey(t)
	n := target.Start(t, Setup{Files: map[string]string{"config/development.yaml": apiKeyFile(k)}})
	c := nodeClient(n)
	expectAuthOn(t, c)
	expectWrites(t, c, "api_key from config/development.yaml with RUN_MODE unset", k)
}

// TestStandinFaultKnobs checks the stand-in's test-only STANDIN_* knobs. Real Qdrant has none of them.
func TestStandinFaultKnobs(t *testing.T) {
	target := NewProcessTarget(standinBinary(t)).(*processTarget)

	t.Run("start_delay", func(t *testing.T) {
		k := newKey(t)
		begin := time.Now()
		n := target.launch(t, Setup{Env: map[string]string{
			"STANDIN_START_DELAY":      "1s",
			"QDRANT__SERVICE__API_KEY": k,
		}})
		time.Sleep(300 * time.Millisecond)
		if _, err := nodeClient(n).try("GET", "/", ""); err == nil {
			t.Errorf("node answered GET / 300 ms after start, want no answer during STANDIN_START_DELAY=1s")
		}
		n.waitReady(t)
		if d := time.Since(begin); d < time.Second {
			t.Errorf("node answered after %s, want at least 1s", d.Round(time.Millisecond))
		}
		expectWrites(t, nodeClient(n), "api_key after the start delay", k)
	})

	t.Run("fail_if_set_alt_in_env", func(t *testing.T) {
		code, out := target.StartFailing(t, Setup{Env: map[string]string{
			"STANDIN_FAIL_IF_SET":          "service.alt_api_key",
			"QDRANT__SERVICE__API_KEY":     newKey(t),
			"QDRANT__SERVICE__ALT_API_KEY": newKey(t),
		}})
		expectKnobExit(t, code, out, "alt_api_key")
	})

	t.Run("fail_if_set_alt_in_file", func(t *testing.T) {
		code, out := target.StartFailing(t, Setup{
			Env: map[string]string{"STANDIN_FAIL_IF_SET": "service.alt_api_key"},
			Files: map[string]string{"config/local.yaml": yamlService(map[string]any{
				"api_key": newKey(t), "alt_api_key": newKey(t),
			})},
		})
		expectKnobExit(t, code, out, "alt_api_key")
	})

	t.Run("fail_if_set_alt_unset_starts", func(t *testing.T) {
		k := newKey(t)
		n := target.Start(t, Setup{Env: map[string]string{
			"STANDIN_FAIL_IF_SET":      "service.alt_api_key",
			"QDRANT__SERVICE__API_KEY": k,
		}})
		expectWrites(t, nodeClient(n), "api_key with STANDIN_FAIL_IF_SET and no alt key", k)
	})

	t.Run("fail_if_file_exists", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "fail-marker")
		if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := target.StartFailing(t, Setup{Env: map[string]string{
			"STANDIN_FAIL_IF_FILE":     marker,
			"QDRANT__SERVICE__API_KEY": newKey(t),
		}})
		expectKnobExit(t, code, out, "")
	})

	t.Run("fail_if_file_missing_starts", func(t *testing.T) {
		k := newKey(t)
		n := target.Start(t, Setup{Env: map[string]string{
			"STANDIN_FAIL_IF_FILE":     filepath.Join(t.TempDir(), "no-such-marker"),
			"QDRANT__SERVICE__API_KEY": k,
		}})
		expectStatus(t, "GET /readyz", nodeClient(n).do(t, "GET", "/readyz", ""), http.StatusOK)
		expectWrites(t, nodeClient(n), "api_key with STANDIN_FAIL_IF_FILE naming a missing file", k)
	})
}

// expectKnobExit checks a fault knob made the stand-in exit with code 3 and say why (mentioning want, if set).
func expectKnobExit(t *testing.T, code int, out, want string) {
	t.Helper()
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if strings.TrimSpace(out) == "" {
		t.Errorf("no output, want a message naming the fault")
	}
	if want != "" && !strings.Contains(out, want) {
		t.Errorf("output %q does not mention %q", redact(out), want)
	}
}

// TestStandinAuditFileNames: the files the audit log writes are named per rotation (qdrant.md §11b:
// audit.YYYY-MM-DD.log daily, audit.YYYY-MM-DD-HH.log hourly) and hold only entries of the period their name
// gives (UTC). A Node has no way to list a container's files, so this is checked on the plain process.
func TestStandinAuditFileNames(t *testing.T) {
	target := NewProcessTarget(standinBinary(t))
	for _, tc := range []struct {
		rotation string
		name     *regexp.Regexp
		layout   string
		span     time.Duration
	}{
		{"daily", regexp.MustCompile(`^audit\.(\d{4}-\d{2}-\d{2})\.log$`), "2006-01-02", 24 * time.Hour},
		{"hourly", regexp.MustCompile(`^audit\.(\d{4}-\d{2}-\d{2}-\d{2})\.log$`), "2006-01-02-15", time.Hour},
	} {
		t.Run(tc.rotation, func(t *testing.T) {
			k := newKey(t)
			n := target.Start(t, Setup{Env: map[string]string{"QDRANT__SERVICE__API_KEY": k,
				"QDRANT__AUDIT__ENABLED": "true", "QDRANT__AUDIT__ROTATION": tc.rotation}})
			c := nodeClient(n)
			id := newName(t, "files")
			c.do(t, "GET", "/collections", "", apiKey(k), traced(id))
			c.do(t, "GET", "/collections", "", apiKey(newKey(t)), traced(id))
			waitAudit(t, c, k, byTracing(id), 2)
			dir := filepath.Join(n.(*processNode).dir, "storage", "audit")
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			lines := 0
			for _, e := range entries {
				m := tc.name.FindStringSubmatch(e.Name())
				if m == nil {
					t.Errorf("file %q in %s, want names like audit.%s.log", e.Name(), dir, tc.layout)
					continue
				}
				start, err := time.Parse(tc.layout, m[1])
				if err != nil {
					t.Errorf("file %q: %v", e.Name(), err)
					continue
				}
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
					if line == "" {
						continue
					}
					lines++
					var ev struct {
						Timestamp time.Time `json:"timestamp"`
					}
					if err := json.Unmarshal([]byte(line), &ev); err != nil {
						t.Errorf("%s: line %q is not a JSON object with a timestamp: %v", e.Name(), snippet([]byte(line)), err)
						continue
					}
					if ev.Timestamp.Before(start) || !ev.Timestamp.Before(start.Add(tc.span)) {
						t.Errorf("%s holds an entry of %s, outside the file's period", e.Name(), ev.Timestamp)
					}
				}
			}
			if lines < 3 { // the two requests and the get_audit_logs checks of waitAudit
				t.Errorf("%d lines in %s, want at least 3", lines, dir)
			}
		})
	}
}
