// Package daemon is the long-running service around the rotation domain: the HTTP API (on-demand rotations, their
// progress, the deployments' state, health), bearer-token authentication, Prometheus metrics and audit events.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/watch"
)

// Options configure the API.
type Options struct {
	Manager *rotation.Manager
	Tokens  *Tokens
	Metrics http.Handler
	// Ready reports whether the daemon can work (Vault reachable, unsealed, its token able to act); /readyz answers
	// 503 while it errs. A *NotReadyError names the reason class /readyz shows; the error itself is only logged.
	Ready func(context.Context) error
	// Findings are the last security review's findings (GET /v1/audit); nil: no review has run.
	Findings *Findings
	// Watch is the audit-log watcher: stragglers and refused requests in GET /v1/deployments and in a completed
	// run; nil: none.
	Watch *watch.Watcher
	// Logger records readiness changes (with the error's detail) and token sources that cannot be read.
	Logger *slog.Logger
}

// NotReadyError is a readiness failure with a short reason class ("unreachable", "sealed", "token"), the only part
// of it an unauthenticated /readyz shows.
type NotReadyError struct {
	Reason string
	Err    error
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("vault not ready (%s): %v", e.Reason, e.Err)
}
func (e *NotReadyError) Unwrap() error { return e.Err }

// NewHandler returns the API's handler:
//
//	POST /v1/deployments/{name}/rotations  {"emergency":bool,"dry_run":bool} -> 202 + Location, 409, 404, 400 (admin);
//	                                       an emergency while the deployment's run is queued: 202 naming that run, made
//	                                       the emergency

//	GET  /v1/rotations                     every run kept, oldest first, with its state (queued, running, ...) (read)
//	GET  /v1/rotations/{id}                progress, timings, outcome (read)
//	GET  /v1/deployments                   fingerprints and ages, last outcome, next run, stragglers (read)
//	GET  /v1/audit                         the last security review's findings (read)
//	GET  /metrics                          Prometheus (read)
//	GET  /healthz, /readyz                 no token
//
// No answer ever holds key material: runs and statuses carry fingerprints only.
func NewHandler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/deployments/{name}/rotations", a.auth(roleAdmin, a.startRotation))
	mux.HandleFunc("GET /v1/rotations", a.auth(roleRead, a.listRotations))
	mux.HandleFunc("GET /v1/rotations/{id}", a.auth(roleRead, a.getRotation))
	mux.HandleFunc("GET /v1/deployments", a.auth(roleRead, a.deployments))
	mux.HandleFunc("GET /v1/audit", a.auth(roleRead, a.audit))
	mux.Handle("GET /metrics", a.auth(roleRead, o.Metrics.ServeHTTP))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	return mux
}

type api struct {
	o Options

	mu       sync.Mutex
	notReady string // the reason class last answered, "" while ready (logged at each change)
}

type ctxKey struct{}

// auth admits a request whose bearer token is valid for role: 401 without a valid token, 403 for a read token on
// an admin route.
func (a *api) auth(need role, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qdrant-rotator"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "a bearer token is required"})
			return
		}
		name, got := a.o.Tokens.Check(r.Context(), token)
		switch {
		case got == roleNone:
			w.Header().Set("WWW-Authenticate", `Bearer realm="qdrant-rotator", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "the bearer token is not valid"})
		case got < need:
			writeJSON(w, http.StatusForbidden, errorBody{Error: fmt.Sprintf("token %q may only read", name)})
		default:
			next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, name)))
		}
	}
}

// bearerToken returns the token of an Authorization header using the Bearer scheme, whose name is
// case-insensitive (RFC 7235): "Bearer X", "bearer X", "BEARER X".
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

type errorBody struct {
	Error             string `json:"error"`
	RunningRotationID string `json:"running_rotation_id,omitempty"`
}

type startBody struct {
	Emergency bool `json:"emergency"`
	DryRun    bool `json:"dry_run"`
}

func (a *api) startRotation(w http.ResponseWriter, r *http.Request) {
	var body startBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "request body: " + err.Error() + ` (want {"emergency": bool, "dry_run": bool})`})
		return
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "request body: one JSON object expected"})
		return
	}
	name := r.PathValue("name")
	actor, _ := r.Context().Value(ctxKey{}).(string)
	id, err := a.o.Manager.Start(name, rotation.Trigger{Emergency: body.Emergency, DryRun: body.DryRun, Actor: "api:" + actor})
	var busy *rotation.BusyError
	switch {
	case errors.As(err, &busy):
		writeJSON(w, http.StatusConflict, errorBody{Error: "a rotation of this deployment is in flight", RunningRotationID: busy.RunID})
	case errors.Is(err, rotation.ErrUnknownDeployment):
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("unknown deployment %q", name)})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error()})
	default:
		loc := "/v1/rotations/" + id
		w.Header().Set("Location", loc)
		writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "deployment": name, "status_url": loc})
	}
}

func (a *api) getRotation(w http.ResponseWriter, r *http.Request) {
	run, ok := a.o.Manager.Get(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("unknown rotation %q", r.PathValue("id"))})
		return
	}
	writeJSON(w, http.StatusOK, a.withStragglers(run)) // with its error_class, so a remote client exits like a local rotation
}

// listRotations answers {"rotations": [...]}: each run kept without its events and per-node progress, so a fleet's
// runs (which are queued, which run, how each ended) are one cheap call that reads nothing from Vault.
func (a *api) listRotations(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"rotations": a.o.Manager.Runs()})
}

func (a *api) deployments(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	writeJSON(w, http.StatusOK, map[string]any{"deployments": a.withActivity(a.o.Manager.Deployments(ctx))})
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	err := a.o.Ready(ctx)
	reason := ""
	if err != nil {
		// Never Vault's error text here: it may name Vault's address or paths, and /readyz takes no token.
		reason = "unavailable"
		var nr *NotReadyError
		if errors.As(err, &nr) && nr.Reason != "" {
			reason = nr.Reason
		}
	}
	a.mu.Lock()
	changed := reason != a.notReady
	a.notReady = reason
	a.mu.Unlock()
	if err != nil {
		if changed {
			a.o.Logger.Warn("not ready", "reason", reason, "error", err)
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "vault not ready", "reason": reason})
		return
	}
	if changed {
		a.o.Logger.Info("ready again")
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
