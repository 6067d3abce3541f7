package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// --- prometheus/: the alerting rules --------------------------------------------------------------------------------

// promtool is $PROMTOOL_BIN or promtool on PATH; without it the test fails (make test installs it through
// testbed/prometheus/ensure-promtool.sh).
func promtool(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("PROMTOOL_BIN"); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is required to test prometheus/alerts.yml (testbed/prometheus/ensure-promtool.sh installs it): %v", err)
	}
	return bin
}

// The rules load, and promtool's unit tests pass: each alert fires on series that should trigger it and stays
// silent on series and at times that should not.
func TestPrometheusAlertRules(t *testing.T) {
	t.Parallel()
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// Every alert has a severity, a summary and a description naming the deployment; every metric it reads is one
// daemon/metrics.go exposes, so a renamed metric breaks this test; and alerts_test.yml has, for
// every alert, an evaluation where it fires and one where it does not.
func TestPrometheusAlertsShape(t *testing.T) {
	t.Parallel()
	var rules ruleFile
	readYAML(t, filepath.Join("prometheus", "alerts.yml"), &rules)
	var tests ruleTests
	readYAML(t, filepath.Join("prometheus", "alerts_test.yml"), &tests)
	src, err := os.ReadFile(filepath.Join("..", "daemon", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				silent[at.Alertname] = true
			}
		}
	}
	metric := regexp.MustCompile(`\brotator_[a-z0-9_]+`)
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("a recording rule in alerts.yml (expr %q): the file holds alerts only", r.Expr)
				continue
			}
			if slices.Contains(alerts, r.Alert) {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			alerts = append(alerts, r.Alert)
			if !slices.Contains([]string{"critical", "warning"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description"} {
				if !strings.Contains(r.Annotations[a], "$labels.deployment") {
					t.Errorf("%s: the %s does not name the deployment: %q", r.Alert, a, r.Annotations[a])
				}
			}
			names := metric.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("%s reads no rotator metric: %q", r.Alert, r.Expr)
			}
			for _, name := range names {
				if !strings.Contains(string(src), `"`+name+`"`) {
					t.Errorf("%s reads %s, which daemon/metrics.go does not expose", r.Alert, name)
				}
			}
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("alerts_test.yml must evaluate %s where it fires (%v) and where it stays silent (%v)", r.Alert, fires[r.Alert], silent[r.Alert])
			}
		}
	}
	if len(alerts) < 8 {
		t.Errorf("alerts.yml has %d alerts (%v), want the 8 of issue 12 part 5 at least", len(alerts), alerts)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
