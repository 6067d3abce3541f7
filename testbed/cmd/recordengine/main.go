// Command recordengine records the Docker Engine answers that qdrantctl's Recreate and RecoverRecreate tests play
// back without Docker (qdrantctl/testdata/engine/*.json). It needs the Docker Engine. From the repository root:
//
//	go run ./testbed/cmd/recordengine -out qdrantctl/testdata/engine
//
// For each scenario it starts a stand-in container through the harness, attached to the run's network and to a
// second one, puts a recording proxy (testbed/enginetape) between a qdrantctl.Engine and the real engine, runs
// Recreate, checks on the real engine that the outcome is the expected one, and only then writes the tape. A
// failure scenario has the proxy answer one request with an error instead of the engine; every other answer is
// the engine's own. The recover scenarios lay out what a crash in the middle of a Recreate leaves and record
// RecoverRecreate. Everything it starts carries the test bed's label and is removed at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qdrantrotator/rotator/qdrantctl"
	"github.com/qdrantrotator/rotator/testbed/enginetape"
	"github.com/qdrantrotator/rotator/testbed/harness"
)

const (
	keyVar      = "QDRANT__SERVICE__API_KEY"
	oldKey      = "tape-old-key-not-a-secret"
	newKey      = "tape-new-key-not-a-secret"
	stopTimeout = 5 * time.Second
)

// scenario is one tape.
type scenario struct {
	name    string
	comment string
	// inject picks the request the proxy fails (nil: none), given the container's name and the old container's id.
	inject func(name, oldID, method, path, query string) bool
	// wantSwapped: the container NAME is a new one afterwards (else the old one, put back).
	wantSwapped bool
}

var scenarios = []scenario{
	{
		name:        "recreate",
		comment:     "Recreate of a running stand-in container on two networks, changing " + keyVar + ": every answer is the engine's.",
		wantSwapped: true,
	},
	{
		name:    "recreate-create-fails",
		comment: "Recreate whose container create fails (answered HTTP 500 by the recorder; every other answer is the engine's): the old container is renamed back and started.",
		inject: func(_, _, method, path, _ string) bool {
			return method == "POST" && strings.HasSuffix(path, "/containers/create")
		},
	},
	{
		name:    "recreate-rename-fails",
		comment: "Recreate whose rename of the new container to the container's name fails (answered HTTP 500 by the recorder; every other answer is the engine's): the new container is removed, the old one renamed back and started.",
		inject: func(name, oldID, method, path, query string) bool {
			return method == "POST" && strings.HasSuffix(path, "/rename") && query == "name="+name && !strings.Contains(path, oldID)
		},
	},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	out := flag.String("out", filepath.Join("qdrantctl", "testdata", "engine"), "folder for the tapes")
	flag.Parse()
	err := record(ctx, *out)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "recordengine: %v\n", err)
		os.Exit(1)
	}
}

func record(ctx context.Context, out string) (err error) {
	engineHost := os.Getenv("DOCKER_HOST")
	if engineHost == "" {
		engineHost = "unix:///var/run/docker.sock"
	}
	if os.Getenv("DOCKER_TLS_VERIFY") != "" || os.Getenv("DOCKER_CERT_PATH") != "" {
		return errors.New("the recorder proxies plain HTTP only: unset DOCKER_TLS_VERIFY and DOCKER_CERT_PATH")
	}
	h, err := harness.New(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, h.Close(context.Background())) }()
	image, err := harness.BuildStandinImage(ctx, h.Engine)
	if err != nil {
		return err
	}
	second := h.Network() + "-b"
	if _, err := h.CreateNetwork(ctx, second); err != nil {
		return err
	}
	rec, err := enginetape.NewRecorder(engineHost)
	if err != nil {
		return err
	}
	proxy := httptest.NewServer(rec)
	defer proxy.Close()
	// The Engine under record reaches the engine through the proxy; the harness keeps its own direct connection.
	if err := os.Setenv("DOCKER_HOST", "tcp://"+proxy.Listener.Addr().String()); err != nil {
		return err
	}
	save := func(name string, tape *enginetape.Tape) error {
		path := filepath.Join(out, name+".json")
		if err := tape.Save(path); err != nil {
			return err
		}
		fmt.Printf("%s: %d exchanges\n", path, len(tape.Exchanges))
		return nil
	}
	for _, sc := range scenarios {
		tape, err := recordOne(ctx, h, rec, image, second, sc)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		if err := save(sc.name, tape); err != nil {
			return err
		}
	}
	for _, sc := range recoverScenarios {
		tape, err := recordRecover(ctx, h, rec, image, sc)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		if err := save(sc.name, tape); err != nil {
			return err
		}
	}
	return nil
}

// recoverScenario is a tape of RecoverRecreate on what a crash in the middle of a Recreate left.
type recoverScenario struct {
	name, comment string
	// swapped: the crash came after the swap (the new container has NAME); else before it (the new one is still
	// NAME-rotator-new, and no container has NAME).
	swapped bool
}

var recoverScenarios = []recoverScenario{
	{
		name:    "recover-before-swap",
		comment: "RecoverRecreate after a crash between renaming the old container aside and giving the new one its name: NAME-rotator-new is removed, NAME-rotator-old renamed back.",
	},
	{
		name:    "recover-after-swap",
		comment: "RecoverRecreate after a crash between the swap and the removal of the old container: NAME-rotator-old is removed.",
		swapped: true,
	},
}

// recordRecover lays out, with the harness, the containers a crash leaves (created, not started, as the old one is
// stopped by then), and records RecoverRecreate putting them straight.
func recordRecover(ctx context.Context, h *harness.Harness, rec *enginetape.Recorder, image string, sc recoverScenario) (*enginetape.Tape, error) {
	name := "qdrant-tape-" + sc.name
	env := []string{keyVar + "=" + oldKey, "QDRANT__LOG_LEVEL=INFO"}
	old, err := h.Create(ctx, harness.NodeSpec{Name: name + "-rotator-old", Image: image, Env: env})
	if err != nil {
		return nil, err
	}
	newName := name + "-rotator-new"
	if sc.swapped {
		newName = name
	}
	created, err := h.Create(ctx, harness.NodeSpec{Name: newName, Image: image, Env: setEnv(env, keyVar, newKey)})
	if err != nil {
		return nil, err
	}
	rec.Take()
	eng, err := qdrantctl.NewEngine(ctx)
	if err != nil {
		return nil, err
	}
	recoverErr := eng.RecoverRecreate(ctx, name)
	if err := eng.Close(); err != nil {
		return nil, err
	}
	exchanges := rec.Take()
	if recoverErr != nil {
		return nil, fmt.Errorf("RecoverRecreate: %w", recoverErr)
	}
	info, err := h.Engine.Inspect(ctx, name)
	if err != nil {
		return nil, err
	}
	if want := map[bool]string{false: old.ID, true: created.ID}[sc.swapped]; info.ID != want {
		return nil, fmt.Errorf("%s is container %s afterwards, want %s", name, info.ID, want)
	}
	if err := noLeftovers(ctx, h, name); err != nil {
		return nil, err
	}
	return &enginetape.Tape{
		Comment:   sc.comment + " Recorded by testbed/cmd/recordengine.",
		Operation: "recover",
		Container: name,
		UserEnv:   env,
		Exchanges: exchanges,
	}, nil
}

// noLeftovers checks that no container has a name Recreate gives for a moment.
func noLeftovers(ctx context.Context, h *harness.Harness, name string) error {
	for _, leftover := range []string{name + "-rotator-new", name + "-rotator-old"} {
		if _, err := h.Engine.Inspect(ctx, leftover); !errors.Is(err, qdrantctl.ErrNoContainer) {
			return fmt.Errorf("%s is left: %v", leftover, err)
		}
	}
	return nil
}

func recordOne(ctx context.Context, h *harness.Harness, rec *enginetape.Recorder, image, second string, sc scenario) (*enginetape.Tape, error) {
	name := "qdrant-tape-" + sc.name
	env := []string{keyVar + "=" + oldKey, "QDRANT__LOG_LEVEL=INFO"}
	node, err := h.Create(ctx, harness.NodeSpec{Name: name, Image: image, Env: env})
	if err != nil {
		return nil, err
	}
	if err := h.Engine.ConnectNetwork(ctx, second, node.ID, []string{name + "-b"}); err != nil {
		return nil, err
	}
	if err := node.Start(ctx); err != nil {
		return nil, err
	}

	rec.Take()
	var injected atomic.Bool
	rec.SetInjector(func(method, path, query string) (int, string, bool) {
		if sc.inject == nil || !sc.inject(name, node.ID, method, path, query) || !injected.CompareAndSwap(false, true) {
			return 0, "", false
		}
		return 500, "recordengine: injected failure", true
	})
	eng, err := qdrantctl.NewEngine(ctx)
	if err != nil {
		return nil, err
	}
	recreateErr := eng.Recreate(ctx, name, func(env []string) []string { return setEnv(env, keyVar, newKey) }, stopTimeout)
	if err := eng.Close(); err != nil {
		return nil, err
	}
	rec.SetInjector(nil)
	exchanges := rec.Take()
	if sc.inject != nil && !injected.Load() {
		return nil, errors.New("the failure to inject was never asked for")
	}
	if (recreateErr == nil) != sc.wantSwapped {
		return nil, fmt.Errorf("Recreate returned %v", recreateErr)
	}

	// The outcome, on the real engine.
	info, err := h.Engine.Inspect(ctx, name)
	if err != nil {
		return nil, err
	}
	wantKey := oldKey
	if sc.wantSwapped {
		wantKey = newKey
	}
	switch {
	case !info.Running:
		return nil, errors.New("the container does not run afterwards")
	case (info.ID != node.ID) != sc.wantSwapped:
		return nil, fmt.Errorf("container id %s afterwards (old %s), swapped: want %v", info.ID, node.ID, sc.wantSwapped)
	case !slices.Contains(info.Env, keyVar+"="+wantKey):
		return nil, fmt.Errorf("the container's environment lacks %s=<%s>", keyVar, map[bool]string{true: "new key", false: "old key"}[sc.wantSwapped])
	}
	if err := noLeftovers(ctx, h, name); err != nil {
		return nil, err
	}
	nets := []string{h.Network(), second}
	slices.Sort(nets)
	tape := &enginetape.Tape{
		Comment:            sc.comment + " Recorded by testbed/cmd/recordengine.",
		Operation:          "recreate",
		Container:          name,
		StopTimeoutSeconds: int(stopTimeout / time.Second),
		UserEnv:            env,
		SetEnv:             map[string]string{keyVar: newKey},
		Networks:           nets,
		Exchanges:          exchanges,
	}
	if recreateErr != nil {
		tape.Error = recreateErr.Error()
	}
	return tape, nil
}

// setEnv sets one variable of a KEY=value list, in place if it is there, else at the end.
func setEnv(env []string, key, value string) []string {
	out := slices.Clone(env)
	for i, kv := range out {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			out[i] = key + "=" + value
			return out
		}
	}
	return append(out, key+"="+value)
}
