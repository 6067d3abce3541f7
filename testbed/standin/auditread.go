package standin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Reading the audit log back (Qdrant's lib/storage/src/audit_reader.rs).

const (
	auditDefaultLimit = 100
	auditMaxLimit     = 10_000
)

// auditQuery is AuditLogQuery: from inclusive, to exclusive, exact-value filters, at most limit entries.
type auditQuery struct {
	from, to *time.Time
	filters  map[string]string
	limit    int
}

// auditFile is one audit file and the period its name says it covers (ok false: a name without a date, such as
// audit.log, which is always read first).
type auditFile struct {
	name  string
	start time.Time
	span  time.Duration
	ok    bool
}

var auditDateRE = regexp.MustCompile(`^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$`)

// parseAuditDate parses %Y-%m-%d into midnight UTC.
func parseAuditDate(s string) (time.Time, bool) {
	m := auditDateRE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	y, _ := strconv.Atoi(m[1])
	mo, _ := strconv.Atoi(m[2])
	d, _ := strconv.Atoi(m[3])
	t := time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC)
	if t.Year() != y || int(t.Month()) != mo || t.Day() != d {
		return time.Time{}, false
	}
	return t, true
}

// parseAuditFile is parse_file_date: the file stem after "audit." is a day (daily) or a day and an hour (hourly).
func parseAuditFile(name string) auditFile {
	f := auditFile{name: name}
	stem := name
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		stem = name[:i]
	}
	part, found := strings.CutPrefix(stem, "audit.")
	if !found {
		return f
	}
	if day, ok := parseAuditDate(part); ok {
		f.start, f.span, f.ok = day, 24*time.Hour, true
		return f
	}
	i := strings.LastIndexByte(part, '-')
	if i < 0 {
		return f
	}
	day, ok := parseAuditDate(part[:i])
	hour, err := strconv.ParseUint(strings.TrimPrefix(part[i+1:], "+"), 10, 32)
	if !ok || err != nil || hour >= 24 || part[i+1:] == "+" {
		return f
	}
	f.start, f.span, f.ok = day.Add(time.Duration(hour)*time.Hour), time.Hour, true
	return f
}

// overlaps reports whether the file may hold entries of the query's time range (filter_files_by_time_range).
func (f auditFile) overlaps(q auditQuery) bool {
	if !f.ok {
		return true
	}
	if q.to != nil && !f.start.Before(*q.to) {
		return false
	}
	if q.from != nil && !f.start.Add(f.span).After(*q.from) {
		return false
	}
	return true
}

// readLocalAuditLogs is read_local_audit_logs: the matching entries of this node's files, newest first. Files are
// read newest first by name (names without a date first); within a file only the last (newest) matches that still
// fit the limit are kept, and an entry at or after time_to ends the file. Lines that are not an audit entry are
// skipped; a line that is not UTF-8 fails the read.
func readLocalAuditLogs(dir string, q auditQuery) ([]auditEvent, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &serviceError{err.Error()}
	}
	var files []auditFile
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "audit") || !strings.HasSuffix(name, ".log") {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || !st.Mode().IsRegular() {
			continue
		}
		files = append(files, parseAuditFile(name))
	}
	sort.Slice(files, func(i, j int) bool {
		if files[i].ok != files[j].ok {
			return !files[i].ok
		}
		return files[i].name > files[j].name
	})
	var out []auditEvent
	for _, f := range files {
		if len(out) >= q.limit {
			break
		}
		if !f.overlaps(q) {
			continue
		}
		got, err := readAuditFile(filepath.Join(dir, f.name), q, q.limit-len(out))
		if err != nil {
			return nil, err
		}
		for i := len(got) - 1; i >= 0; i-- {
			out = append(out, got[i])
		}
	}
	if len(out) > q.limit {
		out = out[:q.limit]
	}
	return out, nil
}

// readAuditFile returns the last `remaining` matching entries of one file, oldest first.
func readAuditFile(path string, q auditQuery, remaining int) ([]auditEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &serviceError{err.Error()}
	}
	defer f.Close()
	rd := bufio.NewReader(f)
	var window []auditEvent
	for {
		line, err := rd.ReadBytes('\n')
		if len(line) > 0 {
			if !utf8.Valid(line) {
				return nil, &serviceError{"stream did not contain valid UTF-8"}
			}
			if ev, ok := parseAuditLine(bytes.TrimSpace(line)); ok {
				if q.to != nil && !ev.Timestamp.Before(*q.to) {
					break // entries are in time order: the rest of the file is later still
				}
				if q.matches(ev) {
					if len(window) == remaining {
						window = window[1:]
					}
					window = append(window, ev)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &serviceError{err.Error()}
		}
	}
	return window, nil
}

// matches applies time_from and the filters (time_to is applied by the reader).
func (q auditQuery) matches(ev auditEvent) bool {
	if q.from != nil && ev.Timestamp.Before(*q.from) {
		return false
	}
	for k, want := range q.filters {
		got, ok := ev.field(k)
		if !ok || got == nil || *got != want {
			return false
		}
	}
	return true
}

// field returns a filterable field of the entry; ok is false for a name that is not one (such a filter matches
// nothing, as in Qdrant).
func (ev auditEvent) field(name string) (*string, bool) {
	switch name {
	case "method":
		return ev.Method, true
	case "api":
		return ev.API, true
	case "auth_type":
		return &ev.AuthType, true
	case "subject":
		return ev.Subject, true
	case "remote":
		return ev.Remote, true
	case "collection":
		return ev.Collection, true
	case "tracing_id":
		return ev.TracingID, true
	case "result":
		return &ev.Result, true
	case "error":
		return ev.Error, true
	}
	return nil, false
}

// parseAuditLine decodes one line as serde decodes AuditEvent: timestamp, auth_type and result required and typed,
// the other fields optional strings (null = absent), unknown fields ignored.
func parseAuditLine(line []byte) (auditEvent, bool) {
	var ev auditEvent
	var m map[string]json.RawMessage
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &m) != nil {
		return ev, false
	}
	str := func(k string) (*string, bool) {
		raw, ok := m[k]
		if !ok || isNull(raw) {
			return nil, true
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return &s, true
	}
	ts, ok := str("timestamp")
	if !ok || ts == nil {
		return ev, false
	}
	t, err := parseAuditTime(*ts)
	if err != nil {
		return ev, false
	}
	ev.Timestamp = auditTime{t}
	at, ok := str("auth_type")
	if !ok || at == nil {
		return ev, false
	}
	switch *at {
	case authTypeAPIKey, authTypeJWT, authTypeNone, "Internal":
		ev.AuthType = *at
	default:
		return ev, false
	}
	res, ok := str("result")
	if !ok || res == nil || (*res != auditOK && *res != auditDenied) {
		return ev, false
	}
	ev.Result = *res
	for _, f := range []struct {
		key string
		dst **string
	}{{"method", &ev.Method}, {"api", &ev.API}, {"subject", &ev.Subject}, {"remote", &ev.Remote},
		{"collection", &ev.Collection}, {"tracing_id", &ev.TracingID}, {"error", &ev.Error}} {
		v, ok := str(f.key)
		if !ok {
			return ev, false
		}
		*f.dst = v
	}
	return ev, true
}

// mergeAuditSources is the k-way merge of fetch_cluster_audit_logs: each source is newest first; at every step the
// head with the latest timestamp is taken (the earlier source on a tie), up to limit entries.
func mergeAuditSources(sources [][]auditEvent, limit int) []auditEvent {
	out := []auditEvent{}
	heads := make([]int, len(sources))
	for len(out) < limit {
		best := -1
		for i, src := range sources {
			if heads[i] >= len(src) {
				continue
			}
			if best < 0 || src[heads[i]].Timestamp.After(sources[best][heads[best]].Timestamp.Time) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		out = append(out, sources[best][heads[best]])
		heads[best]++
	}
	return out
}
