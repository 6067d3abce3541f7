package rotation

import "time"

// Event is one step of a rotation, for progress output and audit. It names keys by fingerprint only.
type Event struct {
	Time        time.Time `json:"time"`
	Deployment  string    `json:"deployment"`
	RotationID  string    `json:"rotation_id,omitempty"`
	Phase       Phase     `json:"phase,omitempty"`
	Step        string    `json:"step"`
	Node        string    `json:"node,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Message     string    `json:"message"`
}

func (r *Rotator) emit(e Event) {
	e.Time, e.Deployment = r.now(), r.opt.Deployment
	r.opt.Logger.Debug(e.Message, "deployment", e.Deployment, "rotation_id", e.RotationID, "phase", string(e.Phase), "step", e.Step, "node", e.Node, "fingerprint", e.Fingerprint)
	if r.opt.Observe != nil {
		r.opt.Observe(e)
	}
}

// emitJ emits an event of the rotation the journal describes.
func (r *Rotator) emitJ(j Journal, e Event) {
	e.RotationID, e.Phase = j.RotationID, j.Phase
	r.emit(e)
}
