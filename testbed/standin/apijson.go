package standin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// writeJSON writes a JSON document with Content-Type application/json (no HTML escaping, like serde_json).
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		fmt.Fprintf(&buf, `{"status":{"error":%q},"time":0}`, "Service internal error: "+err.Error())
		status = http.StatusInternalServerError
	}
	body := bytes.TrimRight(buf.Bytes(), "\n")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type okEnvelope struct {
	Result any     `json:"result"`
	Status string  `json:"status"`
	Time   float64 `json:"time"`
}

type errStatus struct {
	Error string `json:"error"`
}

type errEnvelope struct {
	Status errStatus `json:"status"`
	Time   float64   `json:"time"`
}

// writeResult writes Qdrant's success envelope {"result":...,"status":"ok","time":seconds}.
func writeResult(w http.ResponseWriter, start time.Time, result any) {
	writeJSON(w, http.StatusOK, okEnvelope{Result: result, Status: "ok", Time: time.Since(start).Seconds()})
}

// writeError writes Qdrant's error envelope {"status":{"error":msg},"time":seconds}.
func writeError(w http.ResponseWriter, status int, start time.Time, msg string) {
	t := 0.0
	if !start.IsZero() {
		t = time.Since(start).Seconds()
	}
	writeJSON(w, status, errEnvelope{Status: errStatus{Error: msg}, Time: t})
}

// writeStorageError maps an error to Qdrant's StorageError statuses.
func writeStorageError(w http.ResponseWriter, start time.Time, err error) {
	var fb *forbidden
	var bi *badInput
	var nf *notFound
	var br *badRequest
	var to *timedOut
	switch {
	case errors.As(err, &fb):
		writeError(w, http.StatusForbidden, start, fb.Error())
	case errors.As(err, &bi):
		writeError(w, http.StatusBadRequest, start, bi.Error())
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, start, nf.Error())
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, start, br.Error())
	case errors.As(err, &to):
		writeError(w, http.StatusRequestTimeout, start, to.Error())
	default:
		writeError(w, http.StatusInternalServerError, start, "Service internal error: "+err.Error())
	}
}

// badRequest is StorageError::BadRequest (400 "Bad request: ...").
type badRequest struct{ description string }

func (b *badRequest) Error() string { return "Bad request: " + b.description }

// timedOut is StorageError::Timeout (408 "Timeout: ...").
type timedOut struct{ description string }

func (t *timedOut) Error() string { return "Timeout: " + t.description }

// notFound is StorageError::NotFound.
type notFound struct{ description string }

func (n *notFound) Error() string { return "Not found: " + n.description }

func collectionNotFound(name string) error {
	return &notFound{"Collection `" + name + "` doesn't exist!"}
}

// writePlain writes a text/plain body.
func writePlain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// writeBare writes a body without any Content-Type header (actix HttpResponseBuilder::body).
func writeBare(w http.ResponseWriter, status int, body string) {
	w.Header()["Content-Type"] = nil
	w.WriteHeader(status)
	if body != "" {
		_, _ = io.WriteString(w, body)
	}
}

// bodyError is a JSON body rejection: 400 for format errors, 422 for validation errors. Qdrant reports these with
// time 0.
type bodyError struct {
	status int
	msg    string
}

func (b *bodyError) Error() string { return b.msg }

func formatError(format string, args ...any) *bodyError {
	return &bodyError{http.StatusBadRequest, "Format error in JSON body: " + fmt.Sprintf(format, args...)}
}

func validationError(items ...string) *bodyError {
	return &bodyError{http.StatusUnprocessableEntity, "Validation error in JSON body: [" + strings.Join(items, "; ") + "]"}
}

// readJSONBody reads a JSON object body like actix's Json extractor: a JSON content type is required, the size is
// limited, and the document must be a single JSON object.
func readJSONBody(r *http.Request, limit int64) (map[string]json.RawMessage, *bodyError) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil, &bodyError{http.StatusBadRequest, "Payload error: Content type error"}
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &bodyError{http.StatusBadRequest, "Payload error: " + err.Error()}
	}
	if int64(len(data)) > limit {
		return nil, &bodyError{http.StatusBadRequest,
			fmt.Sprintf("Payload error: JSON payload is larger than allowed (limit: %d bytes).", limit)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, formatError("EOF while parsing a value at line 1 column %d", len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, formatError("%s", jsonErrText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, formatError("trailing characters at offset %d", dec.InputOffset())
	}
	t := bytes.TrimSpace(raw)
	if t[0] != '{' {
		return nil, formatError("invalid type: %s, expected a map", jsonKind(t))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(t, &m); err != nil {
		return nil, formatError("%s", jsonErrText(err))
	}
	return m, nil
}

func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at offset %d", se.Error(), se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "EOF while parsing a value"
	}
	return err.Error()
}

// jsonKind names a JSON value like serde's Unexpected.
func jsonKind(t []byte) string {
	t = bytes.TrimSpace(t)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "map"
	case '[':
		return "sequence"
	case '"':
		return "string " + string(t)
	case 't', 'f':
		return "boolean `" + string(t) + "`"
	case 'n':
		return "unit value"
	}
	if bytes.ContainsAny(t, ".eE") {
		return "floating point `" + string(t) + "`"
	}
	return "integer `" + string(t) + "`"
}

// present reports whether a field exists and is not null (serde Option semantics).
func present(m map[string]json.RawMessage, k string) (json.RawMessage, bool) {
	raw, ok := m[k]
	if !ok || isNull(raw) {
		return nil, false
	}
	return raw, true
}

// optBool decodes an optional boolean field.
func optBool(m map[string]json.RawMessage, k string, def bool) (bool, *bodyError) {
	raw, ok := present(m, k)
	if !ok {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, formatError("invalid type: %s, expected a boolean for field `%s`", jsonKind(raw), k)
	}
	return b, nil
}

// selector is with_payload / with_vector: everything, nothing, or a list of names.
type selector struct {
	all   bool
	names map[string]bool // nil unless a list was given
}

func (s selector) enabled() bool { return s.all || s.names != nil }

func (s selector) has(n string) bool { return s.all || s.names[n] }

func parseSelector(m map[string]json.RawMessage, k string, def bool) (selector, *bodyError) {
	raw, ok := present(m, k)
	if !ok {
		return selector{all: def}, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return selector{all: b}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		s := selector{names: map[string]bool{}}
		for _, n := range list {
			s.names[n] = true
		}
		return s, nil
	}
	var obj struct {
		Include []string `json:"include"`
	}
	if err := json.Unmarshal(raw, &obj); err == nil && obj.Include != nil {
		s := selector{names: map[string]bool{}}
		for _, n := range obj.Include {
			s.names[n] = true
		}
		return s, nil
	}
	return selector{}, formatError("data did not match any variant of untagged enum for field `%s`", k)
}
