package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/watch"
)

// AuditEvent is one step of a key's life: minted, staged, published, promoted, retired, failed, rolled_back,
// adopted. It names keys by keyed fingerprint only.
type AuditEvent struct {
	Event       string    `json:"event"`
	Time        time.Time `json:"time"`
	Deployment  string    `json:"deployment"`
	RotationID  string    `json:"rotation_id,omitempty"`
	RunID       string    `json:"run_id"`
	Node        string    `json:"node,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Actor       string    `json:"actor"`
	Message     string    `json:"message"`
	// Address, Count and Window describe a denied_requests_burst; Stragglers and Count (their addresses) a
	// stragglers event (activity.go).
	Address string `json:"address,omitempty"`
	Count   int    `json:"count,omitempty"`
	Window  string `json:"window,omitempty"`
	// A pointer, so events stay comparable.
	Stragglers *[]watch.Straggler `json:"stragglers,omitempty"`
}

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the request body, keyed by the webhook's secret.
const SignatureHeader = "X-Rotator-Signature"

// Webhook is one receiver of audit events.
type Webhook struct {
	URL string
	// Secret returns the signing secret (read at each delivery, so it can be rotated).
	Secret func() ([]byte, error)
}

// SecretFile reads a webhook secret from a file; an empty (or whitespace-only) file is an error, never an empty
// HMAC key that anyone could sign with.
func SecretFile(path string) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("webhook secret: %w", err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			return nil, fmt.Errorf("webhook secret: file %s is empty", path)
		}
		return b, nil
	}
}

// Auditor writes audit events as JSON lines to a stream and POSTs them to webhooks, signed, retrying with backoff
// (a network error, a 5xx, 408 or 429; another 4xx is final), from one goroutine it owns (Close waits for it).
type Auditor struct {
	out      io.Writer
	webhooks []Webhook
	logger   *slog.Logger
	client   *http.Client

	mu    sync.Mutex
	queue chan AuditEvent
	done  chan struct{}
}

// NewAuditor starts the delivery goroutine.
func NewAuditor(out io.Writer, webhooks []Webhook, logger *slog.Logger) *Auditor {
	a := &Auditor{out: out, webhooks: webhooks, logger: logger, client: &http.Client{Timeout: 10 * time.Second},
		queue: make(chan AuditEvent, 1024), done: make(chan struct{})}
	go a.deliver()
	return a
}

// Event turns a rotation step into an audit event, when it is one of a key's life.
func (a *Auditor) Event(run rotation.Run, e rotation.Event) {
	kind := ""
	switch {
	case e.Step == "minted", e.Step == "published", e.Step == "retired", e.Step == "adopted":
		kind = e.Step
	case e.Step == "stage" && strings.HasPrefix(e.Message, "checked"):
		kind = "staged"
	case e.Step == "promote" && strings.HasPrefix(e.Message, "checked"):
		kind = "promoted"
	case e.Step == "cut" && strings.HasPrefix(e.Message, "checked"):
		kind = "promoted"
	}
	if kind != "" {
		a.emit(AuditEvent{Event: kind, Time: e.Time, Deployment: run.Deployment, RotationID: e.RotationID, RunID: run.ID,
			Node: e.Node, Fingerprint: e.Fingerprint, Actor: run.Actor, Message: e.Message})
	}
}

// Finished records a failed or rolled-back run.
func (a *Auditor) Finished(run rotation.Run) {
	kind := map[rotation.RunState]string{rotation.RunFailed: "failed", rotation.RunRolledBack: "rolled_back"}[run.State]
	if kind != "" {
		a.emit(AuditEvent{Event: kind, Time: run.Finished, Deployment: run.Deployment, RotationID: run.RotationID, RunID: run.ID,
			Actor: run.Actor, Message: run.Error})
	}
}

func (a *Auditor) emit(ev AuditEvent) {
	line, _ := json.Marshal(ev)
	a.mu.Lock()
	_, _ = a.out.Write(append(line, '\n'))
	a.mu.Unlock()
	if len(a.webhooks) == 0 {
		return
	}
	select {
	case a.queue <- ev:
	default:
		a.logger.Error("audit webhook queue full; event dropped from webhooks (it is in the log stream)", "event", ev.Event, "deployment", ev.Deployment)
	}
}

func (a *Auditor) deliver() {
	defer close(a.done)
	for ev := range a.queue {
		body, _ := json.Marshal(ev)
		for _, h := range a.webhooks {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			err := rotation.RetrySlowly(ctx, 2*time.Minute, func() error { return a.post(ctx, h, body) })
			cancel()
			if err != nil {
				// Only the host: webhook URLs often carry a secret in their path.
				a.logger.Error("audit webhook delivery failed", "host", hostOf(h.URL), "event", ev.Event, "error", redactURL(err, h.URL))
			}
		}
	}
}

func (a *Auditor) post(ctx context.Context, h Webhook, body []byte) error {
	secret, err := h.Secret()
	if err != nil {
		return rotation.Permanent(err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return rotation.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("webhook answered HTTP %d", resp.StatusCode)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		// The receiver refuses the request itself: sending it again changes nothing, and would hold up the events
		// queued behind it.
		return rotation.Permanent(err)
	}
	return err
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return "(unparsable URL)"
}

// redactURL removes the webhook's URL from an error (net/http errors quote it).
func redactURL(err error, raw string) string {
	return strings.ReplaceAll(err.Error(), raw, hostOf(raw))
}

// Close delivers what is queued (each delivery bounded) and stops.
func (a *Auditor) Close() {
	close(a.queue)
	<-a.done
}
