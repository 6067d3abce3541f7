package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// remoteRotate asks a running daemon for a rotation and follows it until it ends, printing each step; the exit
// code follows the outcome like a local rotation's.
func remoteRotate(ctx context.Context, server, tokenFile, deployment string, req rotation.Request, dryRun bool, env func(string) string, stdout io.Writer) error {
	if deployment == "" {
		return usageError{errors.New("--server needs --deployment")}
	}
	token := env("ROTATOR_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return usageError{fmt.Errorf("--token-file: %w", err)}
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return usageError{errors.New("--server needs a token: --token-file FILE or ROTATOR_TOKEN")}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	call := func(method, path string, body []byte, out any) (int, error) {
		r, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(server, "/")+path, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(r)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	body, _ := json.Marshal(map[string]bool{"emergency": req.Emergency, "dry_run": dryRun})
	var started struct {
		ID                string `json:"id"`
		Error             string `json:"error"`
		RunningRotationID string `json:"running_rotation_id"`
	}
	status, err := call(http.MethodPost, "/v1/deployments/"+deployment+"/rotations", body, &started)
	switch {
	case err != nil:
		return fmt.Errorf("daemon %s: %w", server, err)
	case status == http.StatusConflict:
		return fmt.Errorf("%w: run %s is in flight", rotation.ErrLocked, started.RunningRotationID)
	case status == http.StatusNotFound:
		return usageError{errors.New(started.Error)}
	case status != http.StatusAccepted:
		return fmt.Errorf("daemon %s: HTTP %d: %s", server, status, started.Error)
	}
	fmt.Fprintf(stdout, "rotation %s accepted by %s\n", started.ID, server)
	shown := 0
	for {
		var run struct {
			rotation.Run
			ErrorClass string `json:"error_class"`
		}
		if status, err := call(http.MethodGet, "/v1/rotations/"+started.ID, nil, &run); err != nil || status != http.StatusOK {
			return fmt.Errorf("daemon %s: follow %s: HTTP %d: %v", server, started.ID, status, err)
		}
		for _, e := range run.Events[min(shown, len(run.Events)):] {
			fmt.Fprintf(stdout, "%s  %-11s %-12s %-9s %-14s %s\n", e.Time.UTC().Format("15:04:05.000"), e.Deployment, e.Phase, e.Step, e.Node, withFP(e.Message, e.Fingerprint))
		}
		shown = len(run.Events)
		if run.State.Final() { // queued, then running, then an outcome
			fmt.Fprintf(stdout, "rotation %s: %s in %.1fs\n", run.ID, run.State, run.Seconds)
			if run.Plan != nil {
				printPlan(stdout, *run.Plan)
			}
			return remoteOutcome(run.State, run.ErrorClass, run.Error)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following %s; the daemon goes on with it", started.ID)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// remoteOutcome turns a finished remote run into the error a local rotation would have returned, so the exit code
// is the same: the daemon's error_class names the sentinel the run's error wrapped.
func remoteOutcome(state rotation.RunState, class, msg string) error {
	var sentinel error
	switch {
	case state == rotation.RunCompleted, state == rotation.RunPlanned:
		return nil
	case state == rotation.RunRolledBack, class == rotation.ClassRolledBack:
		sentinel = rotation.ErrRolledBack
	case state == rotation.RunLocked, class == rotation.ClassLocked:
		sentinel = rotation.ErrLocked
	case class == rotation.ClassDrift:
		sentinel = rotation.ErrDrift
	case class == rotation.ClassClusterUnsafe:
		sentinel = rotation.ErrClusterUnsafe
	}
	if msg == "" {
		msg = fmt.Sprintf("remote rotation ended %s", state)
	}
	return remoteError{msg: msg, sentinel: sentinel}
}

// remoteError is a remote run's error text, wrapping the sentinel its class names (nil: a plain failure).
type remoteError struct {
	msg      string
	sentinel error
}

func (e remoteError) Error() string { return e.msg }
func (e remoteError) Unwrap() error { return e.sentinel }
