// Package enginetape records the Docker Engine API exchanges of a client and plays them back, so that a unit test
// can drive the product's Engine against the answers of a real engine without Docker. Recorder is a reverse proxy
// in front of the engine that writes down every request and answer (and can answer a request itself, to record how
// the client copes with a failure); Player is an HTTP handler that answers each request with the recorded answer to
// the same method, path and query, and keeps what it was sent. testbed/cmd/recordengine makes the tapes that
// qdrantctl's tests play (qdrantctl/testdata/engine).
package enginetape

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// Tape is one recorded scenario: what was done, and every exchange with the engine, in the order they completed.
type Tape struct {
	// Comment says what the scenario is and how it was recorded.
	Comment string `json:"comment"`
	// Operation is the Engine's method the scenario calls: "recreate" (Recreate) or "recover" (RecoverRecreate).
	Operation string `json:"operation"`
	// Container is the name of the container the scenario works on.
	Container string `json:"container"`
	// StopTimeoutSeconds is the stop timeout the scenario used (recreate).
	StopTimeoutSeconds int `json:"stop_timeout_seconds,omitempty"`
	// UserEnv is the environment the container was created with (image defaults not included).
	UserEnv []string `json:"user_env"`
	// SetEnv is the change asked for: variable -> new value (recreate).
	SetEnv map[string]string `json:"set_env,omitempty"`
	// Networks are the networks the container was attached to, sorted by name.
	Networks []string `json:"networks,omitempty"`
	// Error is what the operation returned ("" for success).
	Error string `json:"error,omitempty"`
	// Exchanges are the requests and their answers.
	Exchanges []Exchange `json:"exchanges"`
}

// Exchange is one request and its answer.
type Exchange struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	// Request is the request's JSON body, if it had one.
	Request json.RawMessage `json:"request,omitempty"`
	Status  int             `json:"status"`
	// Header holds the answer's headers a client reads (Content-Type, Api-Version, ...).
	Header map[string]string `json:"header,omitempty"`
	// JSON is the answer's body when it is JSON, Text when it is not.
	JSON json.RawMessage `json:"json,omitempty"`
	Text string          `json:"text,omitempty"`
	// Injected marks an answer the recorder gave itself instead of the engine (a failure to record).
	Injected bool `json:"injected,omitempty"`
}

// Key identifies the request an exchange answers.
func (x Exchange) Key() string {
	if x.Query == "" {
		return x.Method + " " + x.Path
	}
	return x.Method + " " + x.Path + "?" + x.Query
}

// body is the answer's bytes.
func (x Exchange) body() []byte {
	if len(x.JSON) > 0 {
		return append(bytes.TrimSpace(x.JSON), '\n')
	}
	return []byte(x.Text)
}

// Load reads a tape.
func Load(path string) (*Tape, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tape: %w", err)
	}
	var t Tape
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("load tape %s: %w", path, err)
	}
	return &t, nil
}

// Save writes a tape, indented so that a diff of two recordings reads.
func (t *Tape) Save(path string) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("save tape: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save tape: %w", err)
	}
	return nil
}
