package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/posture"
)

// TestAuditExitCodes: the exit code is the worst finding's at or above --fail-on (7 low, 8 medium, 9 high),
// wrapped or not.
func TestAuditExitCodes(t *testing.T) {
	for sev, want := range map[posture.Severity]int{posture.Low: 7, posture.Medium: 8, posture.High: 9} {
		err := fmt.Errorf("audit: %w", &findingsError{worst: sev, count: 1, floor: posture.Low})
		if got := exitCode(err); got != want {
			t.Errorf("worst %s: exit %d, want %d", sev, got, want)
		}
	}
}

func TestPrintFindings(t *testing.T) {
	var b bytes.Buffer
	printFindings(&b, []posture.Finding{
		{Deployment: "prod", Node: "q0", Check: posture.CheckEnvKeys, Severity: posture.Medium, Evidence: "e1", Practice: "p1", Fix: "f1"},
		{Check: posture.CheckAPIExposed, Severity: posture.High, Evidence: "e2", Practice: "p2", Fix: "f2"},
	})
	out := b.String()
	for _, want := range []string{"[medium] keys_in_environment (deployment prod, node q0)\n  evidence: e1\n  practice: p1\n  fix:      f1\n",
		"[high] rotator_api_beyond_loopback_without_tls (fleet)", "2 finding(s): 1 high, 1 medium, 0 low"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
