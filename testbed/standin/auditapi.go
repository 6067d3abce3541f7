package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// POST /audit/logs (Qdrant's src/actix/api/audit_api.rs and src/common/audit.rs) and its internal counterpart
// POST /internal/audit/logs, through which the peer that answers reads every other peer's entries.

// auditPeerTimeout is the default ?timeout for the calls to the other peers (DEFAULT_GRPC_TIMEOUT).
const auditPeerTimeout = 60 * time.Second

// auditConfigured reports whether the configuration has an audit section (enabled or not).
func (s *server) auditConfigured() bool { return s.cfg.Audit != nil }

// parseAuditQuery reads the body like actix-web-validator's Json<AuditLogRequest>: type errors are 400 "Format
// error in JSON body", a limit outside 1..10000 is 422 "Validation error in JSON body"; unknown fields are
// ignored.
func parseAuditQuery(body map[string]json.RawMessage) (auditQuery, *bodyError) {
	q := auditQuery{limit: auditDefaultLimit, filters: map[string]string{}}
	for _, f := range []struct {
		key string
		dst **time.Time
	}{{"time_from", &q.from}, {"time_to", &q.to}} {
		raw, ok := present(body, f.key)
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return q, formatError("invalid type: %s, expected a formatted date and time string or a unix timestamp", jsonKind(raw))
		}
		t, err := parseAuditTime(s)
		if err != nil {
			return q, formatError("%s", err.Error())
		}
		*f.dst = &t
	}
	if raw, ok := present(body, "limit"); ok {
		text := strings.TrimSpace(string(raw))
		n, err := strconv.ParseUint(text, 10, 64)
		switch {
		case err != nil && strings.HasPrefix(text, "-") && !strings.ContainsAny(text, ".eE"):
			return q, formatError("invalid value: integer `%s`, expected usize", text)
		case err != nil:
			return q, formatError("invalid type: %s, expected usize", jsonKind(raw))
		case n < 1 || n > auditMaxLimit:
			return q, &bodyError{http.StatusUnprocessableEntity, fmt.Sprintf(
				"Validation error in JSON body: [limit: value %d invalid, must be from 1 to %d]", n, auditMaxLimit)}
		}
		q.limit = int(n)
	}
	if raw, ok := body["filters"]; ok {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return q, formatError("invalid type: %s, expected a map", jsonKind(raw))
		}
		for k, v := range m {
			var s string
			if err := json.Unmarshal(v, &s); err != nil || isNull(v) {
				return q, formatError("invalid type: %s, expected a string", jsonKind(v))
			}
			q.filters[k] = s
		}
	}
	return q, nil
}

// handleAuditLogs is POST /audit/logs?timeout=SECONDS: manage access (checked, and logged as get_audit_logs, after
// the query and the body are read), then 400 unless audit logging is on, then the entries of every peer, newest
// first.
func (s *server) handleAuditLogs(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	timeout := auditPeerTimeout
	if q := r.URL.Query(); q.Has("timeout") {
		n, err := strconv.ParseUint(q.Get("timeout"), 10, 64)
		switch {
		case err != nil:
			writeError(w, http.StatusBadRequest, time.Time{},
				"Deserialize error in query parameters: invalid digit found in string")
			return
		case n < 1:
			writeError(w, http.StatusUnprocessableEntity, time.Time{},
				"Validation error in query parameters: [timeout: value 0 invalid, must be 1 or larger]")
			return
		}
		timeout = time.Duration(min(n, 1<<32)) * time.Second
	}
	body, e := readJSONBody(r, s.maxBody)
	var query auditQuery
	if e == nil {
		query, e = parseAuditQuery(body)
	}
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	if err := s.checkGlobal(r, "get_audit_logs", requirements{manage: true}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	switch {
	case !s.auditConfigured():
		writeStorageError(w, start, &badRequest{"Audit logging is not configured"})
		return
	case s.audit == nil:
		writeStorageError(w, start, &badRequest{"Audit logging is not enabled"})
		return
	}
	local, err := readLocalAuditLogs(s.audit.dir, query)
	if err != nil {
		writeStorageError(w, start, err)
		return
	}
	sources := [][]auditEvent{local}
	if s.cluster != nil {
		remote, err := s.cluster.peerAuditLogs(r.Context(), query, timeout)
		if err != nil {
			writeStorageError(w, start, err)
			return
		}
		sources = append(sources, remote...)
	}
	writeResult(w, start, map[string]any{"entries": mergeAuditSources(sources, query.limit)})
}

// internalAuditReq is the body of POST /internal/audit/logs (Qdrant's GetAuditLogRequest; limit 0 = default).
type internalAuditReq struct {
	TimeFrom string            `json:"time_from,omitempty"`
	TimeTo   string            `json:"time_to,omitempty"`
	Filters  map[string]string `json:"filters,omitempty"`
	Limit    int               `json:"limit"`
}

type internalAuditReply struct {
	Entries []json.RawMessage `json:"entries"`
}

// peerAuditLogs asks every other peer of the cluster state for its entries, in parallel, each call bounded by
// timeout. Any failure fails the whole request, as in Qdrant: a peer that is down, refuses the internal key, or
// has audit logging off (500 "Failed to fetch audit logs from peer <id>: ..."), or one that does not answer in
// time (408).
func (n *clusterNode) peerAuditLogs(ctx context.Context, q auditQuery, timeout time.Duration) ([][]auditEvent, error) {
	n.mu.Lock()
	type peer struct {
		id  uint64
		uri string
	}
	var peers []peer
	if n.state != nil {
		for id, uri := range n.state.Peers {
			if id != n.id {
				peers = append(peers, peer{id, uri})
			}
		}
	}
	n.mu.Unlock()
	sort.Slice(peers, func(i, j int) bool { return peers[i].id < peers[j].id })

	req := internalAuditReq{Filters: q.filters, Limit: q.limit}
	if q.from != nil {
		req.TimeFrom = q.from.Format(time.RFC3339Nano)
	}
	if q.to != nil {
		req.TimeTo = q.to.Format(time.RFC3339Nano)
	}
	out := make([][]auditEvent, len(peers))
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			var reply internalAuditReply
			err := n.call(cctx, p.uri, "/internal/audit/logs", req, &reply)
			switch {
			case err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded):
				errs[i] = &timedOut{fmt.Sprintf("Operation 'Timed out fetching audit logs from peer %d after Elapsed(())' "+
					"timed out after %ds", p.id, int64(timeout/time.Second))}
			case err != nil:
				errs[i] = &serviceError{fmt.Sprintf("Failed to fetch audit logs from peer %d: %v", p.id, err)}
			default:
				for _, raw := range reply.Entries {
					ev, ok := parseAuditLine(raw)
					if !ok {
						errs[i] = &serviceError{fmt.Sprintf("Failed to parse audit log entry from peer %d", p.id)}
						return
					}
					out[i] = append(out[i], ev)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// handleInternalAuditLogs answers another peer's POST /internal/audit/logs with this peer's own entries.
func (n *clusterNode) handleInternalAuditLogs(w http.ResponseWriter, r *http.Request) {
	var req internalAuditReq
	if !decodeInternal(w, r, &req) {
		return
	}
	if n.auditCfg == nil {
		internalError(w, http.StatusPreconditionFailed, "failed_precondition", "Audit logging is not configured")
		return
	}
	if n.audit == nil {
		internalError(w, http.StatusInternalServerError, "internal", "Bad request: Audit logging is not enabled")
		return
	}
	q := auditQuery{filters: req.Filters, limit: auditDefaultLimit}
	if req.Limit > 0 {
		q.limit = min(req.Limit, auditMaxLimit)
	}
	for _, f := range []struct {
		name, val string
		dst       **time.Time
	}{{"time_from", req.TimeFrom, &q.from}, {"time_to", req.TimeTo, &q.to}} {
		if f.val == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.val)
		if err != nil {
			internalError(w, http.StatusBadRequest, "invalid", "Invalid "+f.name+": "+err.Error())
			return
		}
		*f.dst = &t
	}
	entries, err := readLocalAuditLogs(n.audit.dir, q)
	if err != nil {
		internalError(w, http.StatusInternalServerError, "internal", "Service internal error: "+err.Error())
		return
	}
	reply := internalAuditReply{Entries: make([]json.RawMessage, 0, len(entries))}
	for _, ev := range entries {
		b, err := json.Marshal(ev)
		if err != nil {
			continue
		}
		reply.Entries = append(reply.Entries, b)
	}
	writeJSON(w, http.StatusOK, reply)
}
