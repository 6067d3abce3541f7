package standin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Qdrant's audit log (qdrant.md §11b; lib/storage/src/audit.rs, tracing-appender 0.2.5's RollingFileAppender): one
// JSON object per line in audit.YYYY-MM-DD.log (daily) or audit.YYYY-MM-DD-HH.log (hourly) under audit.dir. The
// stand-in writes each entry synchronously (Qdrant's non-blocking writer may lag a little behind the request).

// maxTracingIDLen bounds the tracing id taken from a request header (MAX_TRACING_ID_LEN).
const maxTracingIDLen = 256

// tracingIDHeaders are checked in this order for the tracing id (TRACING_ID_HEADERS).
var tracingIDHeaders = []string{"x-request-id", "x-tracing-id", "traceparent"}

// Audit results.
const (
	auditOK     = "ok"
	auditDenied = "denied"
)

// auditEvent is Qdrant's AuditEvent; nil fields are omitted, as serde's skip_serializing_if = "Option::is_none".
type auditEvent struct {
	Timestamp  auditTime `json:"timestamp"`
	Method     *string   `json:"method,omitempty"`
	API        *string   `json:"api,omitempty"`
	AuthType   string    `json:"auth_type"`
	Subject    *string   `json:"subject,omitempty"`
	Remote     *string   `json:"remote,omitempty"`
	Collection *string   `json:"collection,omitempty"`
	TracingID  *string   `json:"tracing_id,omitempty"`
	Result     string    `json:"result"`
	Error      *string   `json:"error,omitempty"`
}

// auditTime is a UTC instant written as chrono writes DateTime<Utc>: RFC 3339 with "Z" and 0, 3, 6 or 9 fraction
// digits (SecondsFormat::AutoSi).
type auditTime struct{ time.Time }

func (t auditTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + formatAuditTime(t.Time) + `"`), nil
}

func formatAuditTime(t time.Time) string {
	t = t.UTC()
	s := t.Format("2006-01-02T15:04:05")
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1_000_000 == 0:
		s += fmt.Sprintf(".%03d", ns/1_000_000)
	case ns%1_000 == 0:
		s += fmt.Sprintf(".%06d", ns/1_000)
	default:
		s += fmt.Sprintf(".%09d", ns)
	}
	return s + "Z"
}

// parseAuditTime reads a date and time the way chrono's DateTime<Utc> deserializer does: RFC 3339, also with a
// space or a lower-case t between date and time and a lower-case z.
func parseAuditTime(s string) (time.Time, error) {
	b := []byte(s)
	if len(b) > 10 && (b[10] == ' ' || b[10] == 't') {
		b[10] = 'T'
	}
	if n := len(b); n > 0 && b[n-1] == 'z' {
		b[n-1] = 'Z'
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}, fmt.Errorf("input contains invalid characters")
	}
	return t.UTC(), nil
}

// auditLog writes audit entries to rolling files. Its clock decides both the entries' timestamps and the file
// they go to.
type auditLog struct {
	dir      string // resolved directory
	hourly   bool
	maxFiles int
	logAPI   bool
	trustFwd bool
	now      func() time.Time
	log      *slog.Logger
	mu       sync.Mutex
	file     *os.File
	rollAt   time.Time // the start of the next period: the next write at or after it opens a new file
	closed   bool
}

// openAuditLog is init_audit_logger: it creates the directory, prunes old files (max_log_files) and opens the
// file of the current period, so that file exists from the start.
func openAuditLog(cfg AuditConfig, dir string, now func() time.Time, log *slog.Logger) (*auditLog, error) {
	if now == nil {
		now = time.Now
	}
	a := &auditLog{dir: dir, hourly: cfg.Hourly, maxFiles: int(max(cfg.MaxLogFiles, 1)), logAPI: cfg.LogAPI,
		trustFwd: cfg.TrustForwardedHeaders, now: now, log: log}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create audit log directory %s: %w", dir, err)
	}
	if err := a.rollLocked(now()); err != nil {
		return nil, fmt.Errorf("create audit log appender: %w", err)
	}
	return a, nil
}

// periodStart rounds t down to its rotation period (UTC).
func (a *auditLog) periodStart(t time.Time) time.Time {
	t = t.UTC()
	if a.hourly {
		return t.Truncate(time.Hour)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// fileName is tracing-appender's join_date with prefix "audit" and suffix "log".
func (a *auditLog) fileName(t time.Time) string {
	p := a.periodStart(t)
	if a.hourly {
		return "audit." + p.Format("2006-01-02-15") + ".log"
	}
	return "audit." + p.Format("2006-01-02") + ".log"
}

// rollLocked prunes old files and opens the file of t's period for appending (tracing-appender's Inner::new and
// refresh_writer). The next rollover time advances even if the file cannot be opened; the previous file then
// stays in use.
func (a *auditLog) rollLocked(t time.Time) error {
	if a.hourly {
		a.rollAt = a.periodStart(t).Add(time.Hour)
	} else {
		a.rollAt = a.periodStart(t).AddDate(0, 0, 1)
	}
	a.prune()
	path := filepath.Join(a.dir, a.fileName(t))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		if mkErr := os.MkdirAll(a.dir, 0o755); mkErr != nil {
			return err
		}
		if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return err
		}
	}
	if a.file != nil {
		a.file.Close()
	}
	a.file = f
	return nil
}

// prune is tracing-appender 0.2.5's prune_old_logs: among the regular files whose names start with "audit" and end
// with "log" (the file of the current period included, if it exists), the oldest are deleted until max_log_files-1
// remain, making room for the file about to be opened. tracing-appender orders them by creation time; the stand-in
// by modification time, then name (the same order for files it wrote itself).
func (a *auditLog) prune() {
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		a.log.Error("Error reading the log directory/files: "+err.Error(), "target", "storage::audit")
		return
	}
	type candidate struct {
		name string
		mod  time.Time
	}
	var files []candidate
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, "audit") || !strings.HasSuffix(name, "log") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, candidate{name, info.ModTime()})
	}
	if len(files) < a.maxFiles {
		return
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.Before(files[j].mod)
		}
		return files[i].name < files[j].name
	})
	for _, f := range files[:len(files)-(a.maxFiles-1)] {
		if err := os.Remove(filepath.Join(a.dir, f.name)); err != nil {
			a.log.Error("Failed to remove old log file "+f.name+": "+err.Error(), "target", "storage::audit")
		}
	}
}

// record stamps the event with the clock, rolls over to a new file when the period changed and appends the event
// as one line. Failures are logged, as Qdrant's audit_log does; the request goes on.
func (a *auditLog) record(ev auditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	now := a.now().UTC()
	ev.Timestamp = auditTime{now}
	if !now.Before(a.rollAt) {
		if err := a.rollLocked(now); err != nil {
			a.log.Error("Couldn't create writer for logs: "+err.Error(), "target", "storage::audit")
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one line, ending in "\n"; no HTML escaping, like serde_json
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		a.log.Error("Failed to serialize audit log entry: "+err.Error(), "target", "storage::audit")
		return
	}
	if _, err := a.file.Write(buf.Bytes()); err != nil {
		a.log.Error("Failed to write audit log entry: "+err.Error(), "target", "storage::audit")
	}
}

// close flushes and closes the current file; later entries are dropped.
func (a *auditLog) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	if a.file != nil {
		if err := a.file.Close(); err != nil {
			a.log.Error("close audit log: "+err.Error(), "target", "storage::audit")
		}
	}
}

// clientAddress is the audit log's remote: with trust_forwarded_headers the raw Forwarded header, else the raw
// X-Forwarded-For header (either as sent, possibly a list), else the peer's IP without port.
func (a *auditLog) clientAddress(r *http.Request) *string {
	if a.trustFwd {
		for _, h := range []string{"Forwarded", "X-Forwarded-For"} {
			if v, ok := headerValue(r.Header, h); ok {
				return &v
			}
		}
	}
	ip := remoteIP(r)
	if ip == "" {
		return nil
	}
	return &ip
}

// tracingID is extract_tracing_id: the first of x-request-id, x-tracing-id and traceparent that is present and
// visible ASCII, cut to 256 bytes.
func tracingID(h http.Header) *string {
	for _, name := range tracingIDHeaders {
		if v, ok := headerValue(h, name); ok {
			if len(v) > maxTracingIDLen {
				v = v[:maxTracingIDLen]
			}
			return &v
		}
	}
	return nil
}

// auditAccess writes the entry of one access check inside a handler (Auth::emit_audit): the operation name, the
// collection when the check was collection-scoped, ok or denied with the error.
func (s *server) auditAccess(r *http.Request, method string, collection *string, err error) {
	if s.audit == nil {
		return
	}
	ra := authFrom(r)
	ev := auditEvent{Method: &method, AuthType: ra.authType, Subject: ra.subject, Remote: ra.remote,
		Collection: collection, TracingID: ra.tracingID, Result: auditOK}
	if s.audit.logAPI {
		ev.API = ra.api
	}
	if err != nil {
		msg := err.Error()
		ev.Result, ev.Error = auditDenied, &msg
	}
	s.audit.record(ev)
}

// auditRefused writes the entry of a request the auth middleware refused (log_denied_auth): no method, the path as
// api, auth_type None.
func (s *server) auditRefused(path string, ra *reqAuth, aerr *authError) {
	if s.audit == nil {
		return
	}
	msg := aerr.auditText()
	s.audit.record(auditEvent{API: &path, AuthType: authTypeNone, Remote: ra.remote, TracingID: ra.tracingID,
		Result: auditDenied, Error: &msg})
}

// checkGlobal is Auth::check_global_access: the check and its audit entry.
func (s *server) checkGlobal(r *http.Request, method string, req requirements) error {
	err := accessFrom(r).checkGlobal(req)
	s.auditAccess(r, method, nil, err)
	return err
}

// checkCollection is Auth::check_collection_access: the check and its audit entry, naming the collection.
func (s *server) checkCollection(r *http.Request, method, name string, req requirements) error {
	err := accessFrom(r).checkCollection(name, req)
	s.auditAccess(r, method, &name, err)
	return err
}

// accessLogged is Auth::access: the caller's access, logged as an ok entry.
func (s *server) accessLogged(r *http.Request, method string) access {
	s.auditAccess(r, method, nil, nil)
	return accessFrom(r)
}
