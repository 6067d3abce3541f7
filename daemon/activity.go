package daemon

import (
	"fmt"
	"strings"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/watch"
)

// Suspicious activity from Qdrant's audit logs (package watch): the refused-request bursts and the stragglers of a
// promotion, as audit events, and the stragglers in the API.

// DeniedBurst records an alert: one address was refused more often than the threshold within the window.
func (a *Auditor) DeniedBurst(b watch.Burst) {
	a.emit(AuditEvent{Event: "denied_requests_burst", Time: b.Time, Deployment: b.Deployment, Node: b.Node, Actor: "daemon",
		Address: b.Address, Count: b.Count, Window: b.Window.String(),
		Message: fmt.Sprintf("%s was refused %d times within %s at node %s: a brute-force or leaked-key probe?", b.Address, b.Count, b.Window, b.Node)})
}

// Stragglers records the addresses refused for a wrong key since the deployment's last promotion, when they change:
// clients still holding the retired key.
func (a *Auditor) Stragglers(deployment string, p watch.Promotion, list []watch.Straggler, at time.Time) {
	msg := "no client is refused since the promotion"
	if n := watch.Addresses(list); n > 0 {
		var where []string
		for _, s := range list {
			where = append(where, s.Address+" at "+s.Node)
		}
		msg = fmt.Sprintf("%d address(es) refused for a wrong key since the promotion, likely still holding the retired key: %s", n, strings.Join(where, ", "))
	}
	a.emit(AuditEvent{Event: "stragglers", Time: at, Deployment: deployment, RunID: p.RunID, Actor: "daemon",
		Stragglers: &list, Count: watch.Addresses(list), Message: msg})
}

// deploymentBody is one deployment of GET /v1/deployments: its state, and what its nodes' audit logs show.
type deploymentBody struct {
	rotation.DeploymentView
	watch.View
}

// withActivity joins the watcher's view to each deployment's.
func (a *api) withActivity(views []rotation.DeploymentView) []deploymentBody {
	out := make([]deploymentBody, 0, len(views))
	for _, v := range views {
		b := deploymentBody{DeploymentView: v, View: watch.View{Stragglers: []watch.Straggler{}}}
		if a.o.Watch != nil {
			if w, ok := a.o.Watch.View(v.Name); ok {
				b.View = w
			}
		}
		out = append(out, b)
	}
	return out
}

// runBody is GET /v1/rotations/{id}: a completed run shows the stragglers of its promotion once they are known
// (they appear after it, while it is the deployment's last).
type runBody struct {
	rotation.Run
	Stragglers []watch.Straggler `json:"stragglers,omitempty"`
}

func (a *api) withStragglers(run rotation.Run) runBody {
	b := runBody{Run: run}
	if a.o.Watch != nil && run.State == rotation.RunCompleted {
		b.Stragglers, _ = a.o.Watch.StragglersOf(run.Deployment, run.ID)
	}
	return b
}
