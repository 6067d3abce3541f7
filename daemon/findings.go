package daemon

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/qdrantrotator/rotator/posture"
)

// Findings holds the last security review's findings, for GET /v1/audit and rotator_audit_findings. The daemon
// runs the review on its own schedule and Sets each result.
type Findings struct {
	mu   sync.Mutex
	at   time.Time
	list []posture.Finding
	done bool
}

// Set records a review's findings and says whether they differ from the previous review's (the first review
// counts as a change when it finds anything).
func (f *Findings) Set(at time.Time, list []posture.Finding) (changed bool) {
	list = slices.Clone(list)
	f.mu.Lock()
	defer f.mu.Unlock()
	changed = !slices.Equal(f.list, list) && (f.done || len(list) > 0)
	f.at, f.list, f.done = at, list, true
	return changed
}

// Last returns the last review's time and findings (ok false before the first review).
func (f *Findings) Last() (at time.Time, list []posture.Finding, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at, slices.Clone(f.list), f.done
}

// auditBody is GET /v1/audit's answer.
type auditBody struct {
	AuditedAt time.Time         `json:"audited_at,omitzero"`
	Findings  []posture.Finding `json:"findings"`
}

func (a *api) audit(w http.ResponseWriter, _ *http.Request) {
	body := auditBody{Findings: []posture.Finding{}}
	if a.o.Findings != nil {
		if at, list, ok := a.o.Findings.Last(); ok {
			body.AuditedAt = at
			if list != nil {
				body.Findings = list
			}
		}
	}
	writeJSON(w, http.StatusOK, body)
}

// FindingsChanged records an audit event: the security review's findings differ from the previous review's.
func (a *Auditor) FindingsChanged(at time.Time, list []posture.Finding) {
	count := map[posture.Severity]int{}
	for _, f := range list {
		count[f.Severity]++
	}
	a.emit(AuditEvent{Event: "audit_findings_changed", Time: at, Actor: "daemon",
		Message: fmt.Sprintf("security review: %d finding(s): %d high, %d medium, %d low (GET /v1/audit)", len(list), count[posture.High], count[posture.Medium], count[posture.Low])})
}
