package qdrantctl

// Recreate against recorded Docker Engine answers, without Docker. The tapes in testdata/engine were recorded from
// the real engine by testbed/cmd/recordengine (how to re-record: testdata/engine/README.md). Recreate is tested for
// real by the env-mode e2e rotations in cmd/rotator (TestRotationZeroRejections/env and the others in env mode).

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/qdrantrotator/rotator/testbed/enginetape"
)

// replay runs the tape's operation as the recording did, against a Player of it, and returns the calls it made
// (pings left out, version prefix cut, the ids and the name replaced by OLD, NEW and NAME), the player and the tape.
func replay(t *testing.T, file string) ([]string, *enginetape.Player, *enginetape.Tape, error) {
	t.Helper()
	tape, err := enginetape.Load(filepath.Join("testdata", "engine", file))
	if err != nil {
		t.Fatal(err)
	}
	player := enginetape.NewPlayer(tape)
	srv := httptest.NewServer(player)
	defer srv.Close()
	ctx := context.Background()
	e, err := dial(ctx, client.WithHost("tcp://"+srv.Listener.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	var opErr error
	switch tape.Operation {
	case "recreate":
		opErr = e.Recreate(ctx, tape.Container, func(env []string) []string { return setEnvForTape(env, tape.SetEnv) },
			time.Duration(tape.StopTimeoutSeconds)*time.Second)
	case "recover":
		opErr = e.RecoverRecreate(ctx, tape.Container)
	default:
		t.Fatalf("tape %s: operation %q", file, tape.Operation)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if u := player.Unmatched(); len(u) > 0 {
		t.Errorf("requests the recorded engine never answered (the calls changed: re-record the tapes):\n%s", strings.Join(u, "\n"))
	}
	if u := player.Unused(); len(u) > 0 {
		t.Errorf("recorded requests no longer made:\n%s", strings.Join(u, "\n"))
	}

	// OLD is the container that had the name (or NAME-rotator-old, for a recovery); NEW the one created.
	oldPath := "/containers/" + tape.Container + "/json"
	if tape.Operation == "recover" {
		oldPath = "/containers/" + tape.Container + "-rotator-old/json"
	}
	pairs := []string{inspected(t, tape, "GET", oldPath).ID, "OLD"}
	if x, ok := exchange(tape, "POST", "/containers/create"); ok && x.Status == 201 {
		var created container.CreateResponse
		if err := json.Unmarshal(x.JSON, &created); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, created.ID, "NEW")
	}
	names := strings.NewReplacer(append(pairs, "/"+tape.Container, "/NAME", "="+tape.Container, "=NAME")...)
	var calls []string
	for _, c := range player.Calls() {
		if strings.HasSuffix(c.Path, "/_ping") {
			continue
		}
		calls = append(calls, names.Replace(versionless(c.Key())))
	}
	return calls, player, tape, opErr
}

// setEnvForTape applies the tape's change (variable -> new value) as recordengine did: in place, else appended.
func setEnvForTape(env []string, set map[string]string) []string {
	out := slices.Clone(env)
	for k, v := range set {
		i := slices.IndexFunc(out, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
		if i < 0 {
			out = append(out, k+"="+v)
		} else {
			out[i] = k + "=" + v
		}
	}
	return out
}

// versionless cuts the /v1.NN prefix of an Engine API path.
func versionless(key string) string {
	method, rest, _ := strings.Cut(key, " ")
	if strings.HasPrefix(rest, "/v1.") {
		if i := strings.Index(rest[1:], "/"); i >= 0 {
			rest = rest[i+1:]
		}
	}
	return method + " " + rest
}

// sentBody is the body of the one request Recreate sent to that method and version-less path.
func sentBody(t *testing.T, player *enginetape.Player, method, path string) []byte {
	t.Helper()
	var bodies [][]byte
	for _, c := range player.Calls() {
		if c.Method == method && versionless(method+" "+c.Path) == method+" "+path {
			bodies = append(bodies, c.Body)
		}
	}
	if len(bodies) != 1 {
		t.Fatalf("Recreate sent %d requests %s %s, want 1", len(bodies), method, path)
	}
	return bodies[0]
}

// exchange finds the first exchange of the tape with that method and version-less path.
func exchange(tape *enginetape.Tape, method, path string) (enginetape.Exchange, bool) {
	for _, x := range tape.Exchanges {
		if x.Method == method && versionless(method+" "+x.Path) == method+" "+path {
			return x, true
		}
	}
	return enginetape.Exchange{}, false
}

func inspected(t *testing.T, tape *enginetape.Tape, method, path string) container.InspectResponse {
	t.Helper()
	x, ok := exchange(tape, method, path)
	if !ok {
		t.Fatalf("the tape has no %s %s", method, path)
	}
	var info container.InspectResponse
	if err := json.Unmarshal(x.JSON, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// checkOrder checks calls against Recreate's recipe: before (in order), then the create branch and the stop branch
// in any interleaving (each in order), then after (in order).
func checkOrder(t *testing.T, calls, before, createBranch, stopBranch, after []string) {
	t.Helper()
	n, m := len(before), len(before)+len(createBranch)+len(stopBranch)
	if len(calls) != m+len(after) {
		t.Fatalf("Recreate made %d calls, want %d:\n%s", len(calls), m+len(after), strings.Join(calls, "\n"))
	}
	var gotCreate, gotStop []string
	for _, c := range calls[n:m] {
		if slices.Contains(createBranch, c) {
			gotCreate = append(gotCreate, c)
		} else {
			gotStop = append(gotStop, c)
		}
	}
	for _, part := range []struct {
		name      string
		got, want []string
	}{
		{"first", calls[:n], before},
		{"creating the new container", gotCreate, createBranch},
		{"stopping the old one, meanwhile", gotStop, stopBranch},
		{"then", calls[m:], after},
	} {
		if !slices.Equal(part.got, part.want) {
			t.Errorf("%s: calls\n  %s\nwant\n  %s", part.name, strings.Join(part.got, "\n  "), strings.Join(part.want, "\n  "))
		}
	}
}

// recipeStart is what every Recreate does first: put straight what a crash left (nothing here), inspect the
// container, its image, and the image its reference names now.
func recipeStart(img, ref string) []string {
	return []string{
		"DELETE /containers/NAME-rotator-new?force=1",
		"GET /containers/NAME-rotator-old/json",
		"GET /containers/NAME/json",
		"GET /images/" + img + "/json",
		"GET /images/" + ref + "/json",
	}
}

// stopBranch stops the old container with its own stop signal (none is sent) and the configured timeout, and
// checks that it stopped.
func stopBranch(tape *enginetape.Tape) []string {
	return []string{
		"POST /containers/OLD/stop?t=" + strconv.Itoa(tape.StopTimeoutSeconds),
		"GET /containers/OLD/json",
	}
}

// TestRecreateRecordedSwap: against the engine's recorded answers, Recreate makes exactly the recipe's calls, in its
// order (the new container created while the old one stops; renamed aside, swapped, started, and only then the old
// one removed), and the new container carries exactly the user's settings with only the asked variable changed:
// no image default copied, the host config as it was, the first network at create and the other connected after.
func TestRecreateRecordedSwap(t *testing.T) {
	calls, player, tape, err := replay(t, "recreate.json")
	if err != nil {
		t.Fatalf("Recreate: %v", err)
	}
	old := inspected(t, tape, "GET", "/containers/"+tape.Container+"/json")
	if len(tape.Networks) != 2 {
		t.Fatalf("the tape's container is on %v, want two networks", tape.Networks)
	}
	checkOrder(t, calls,
		recipeStart(old.Image, old.Config.Image),
		[]string{"POST /containers/create?name=NAME-rotator-new", "POST /networks/" + tape.Networks[1] + "/connect"},
		stopBranch(tape),
		[]string{
			"POST /containers/OLD/rename?name=NAME-rotator-old",
			"POST /containers/NEW/rename?name=NAME",
			"POST /containers/NEW/start",
			"DELETE /containers/OLD?force=1",
		})

	// What the new container is created with.
	var sent container.CreateRequest
	if err := json.Unmarshal(sentBody(t, player, "POST", "/containers/create"), &sent); err != nil || sent.Config == nil {
		t.Fatalf("create request: %v", err)
	}
	wantEnv := setEnvForTape(tape.UserEnv, tape.SetEnv)
	if got := slices.Sorted(slices.Values(sent.Env)); !slices.Equal(got, slices.Sorted(slices.Values(wantEnv))) {
		t.Errorf("the new container's environment is %q, want exactly the user's with the key changed: %q", got, wantEnv)
	}
	var img image.InspectResponse
	ix, _ := exchange(tape, "GET", "/images/"+old.Image+"/json")
	if err := json.Unmarshal(ix.JSON, &img); err != nil || img.Config == nil {
		t.Fatalf("image inspect: %v", err)
	}
	// Nothing else: every setting that differs from the old container's is one dropped because the image gives it.
	imageDefaults := jsonMap(t, img.Config)
	got, was := jsonMap(t, sent.Config), jsonMap(t, old.Config)
	for k := range mergedKeys(got, was) {
		g, w, d := got[k], was[k], imageDefaults[k]
		switch {
		case reflect.DeepEqual(g, w), k == "Env":
		case k == "Hostname" && g == nil && w == old.ID[:12]:
		case k == "Labels" || k == "ExposedPorts" || k == "Volumes":
			want := map[string]any{}
			wm, _ := w.(map[string]any)
			dm, _ := d.(map[string]any)
			for kk, vv := range wm {
				if dv, ok := dm[kk]; !ok || !reflect.DeepEqual(dv, vv) {
					want[kk] = vv
				}
			}
			if gm, _ := g.(map[string]any); len(gm)+len(want) > 0 && !reflect.DeepEqual(gm, want) {
				t.Errorf("%s: sent %v, want the container's without the image's: %v", k, g, want)
			}
		case g == nil && reflect.DeepEqual(w, d):
		default:
			t.Errorf("%s: sent %v, the container had %v (image default %v)", k, g, w, d)
		}
	}
	if !reflect.DeepEqual(jsonMap(t, sent.HostConfig), jsonMap(t, old.HostConfig)) {
		t.Errorf("host config changed:\nsent %s\nhad  %s", mustJSON(t, sent.HostConfig), mustJSON(t, old.HostConfig))
	}
	// Networks: the first at create, with the user's aliases (not the one Docker derives from the old id).
	first, second := tape.Networks[0], tape.Networks[1]
	if sent.NetworkingConfig == nil || len(sent.NetworkingConfig.EndpointsConfig) != 1 || sent.NetworkingConfig.EndpointsConfig[first] == nil {
		t.Fatalf("networking config %s, want exactly %s", mustJSON(t, sent.NetworkingConfig), first)
	}
	if got, want := sent.NetworkingConfig.EndpointsConfig[first].Aliases, userAliases(old, first); !slices.Equal(got, want) {
		t.Errorf("aliases on %s: %q, want %q", first, got, want)
	}
	var connect network.ConnectOptions
	if err := json.Unmarshal(sentBody(t, player, "POST", "/networks/"+second+"/connect"), &connect); err != nil || connect.EndpointConfig == nil {
		t.Fatalf("connect request: %v", err)
	}
	if got, want := connect.EndpointConfig.Aliases, userAliases(old, second); !slices.Equal(got, want) {
		t.Errorf("aliases on %s: %q, want %q", second, got, want)
	}
}

// TestRecreateRecordedCreateFails: the engine refuses the create; the old container, stopped meanwhile, is renamed
// back to its name (it never left it) and started; nothing is removed.
func TestRecreateRecordedCreateFails(t *testing.T) {
	calls, _, tape, err := replay(t, "recreate-create-fails.json")
	if err == nil || !strings.Contains(err.Error(), "the old one was put back") || err.Error() != tape.Error {
		t.Fatalf("Recreate returned %v, want %q", err, tape.Error)
	}
	old := inspected(t, tape, "GET", "/containers/"+tape.Container+"/json")
	checkOrder(t, calls,
		recipeStart(old.Image, old.Config.Image),
		[]string{"POST /containers/create?name=NAME-rotator-new"},
		stopBranch(tape),
		[]string{
			"POST /containers/OLD/rename?name=NAME",
			"POST /containers/OLD/start",
		})
}

// TestRecreateRecordedRenameFails: the engine refuses to give the new container the name once the old one was
// renamed aside; the new container is removed, the old one renamed back and started.
func TestRecreateRecordedRenameFails(t *testing.T) {
	calls, _, tape, err := replay(t, "recreate-rename-fails.json")
	if err == nil || !strings.Contains(err.Error(), "the old one was put back") || err.Error() != tape.Error {
		t.Fatalf("Recreate returned %v, want %q", err, tape.Error)
	}
	old := inspected(t, tape, "GET", "/containers/"+tape.Container+"/json")
	checkOrder(t, calls,
		recipeStart(old.Image, old.Config.Image),
		[]string{"POST /containers/create?name=NAME-rotator-new", "POST /networks/" + tape.Networks[1] + "/connect"},
		stopBranch(tape),
		[]string{
			"POST /containers/OLD/rename?name=NAME-rotator-old",
			"POST /containers/NEW/rename?name=NAME",
			"DELETE /containers/NEW?force=1",
			"POST /containers/OLD/rename?name=NAME",
			"POST /containers/OLD/start",
		})
}

// userAliases are a container's aliases on a network less the one Docker derives from its id.
func userAliases(info container.InspectResponse, net string) []string {
	ep := info.NetworkSettings.Networks[net]
	if ep == nil {
		return nil
	}
	var out []string
	for _, a := range ep.Aliases {
		if a != info.ID[:12] {
			out = append(out, a)
		}
	}
	return out
}

func jsonMap(t *testing.T, v any) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal([]byte(mustJSON(t, v)), &m); err != nil {
		t.Fatal(err)
	}
	// An empty string, list or map is as good as absent.
	for k, v := range m {
		switch v := v.(type) {
		case string:
			if v == "" {
				delete(m, k)
			}
		case []any:
			if len(v) == 0 {
				delete(m, k)
			}
		case map[string]any:
			if len(v) == 0 {
				delete(m, k)
			}
		case nil:
			delete(m, k)
		}
	}
	return m
}

func mergedKeys(a, b map[string]any) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestRecoverRecreateRecorded: against the engine's recorded answers, RecoverRecreate puts straight what a crash in
// the middle of a Recreate left: before the swap, the new container goes and the old one gets its name back; after
// it, the old one goes.
func TestRecoverRecreateRecorded(t *testing.T) {
	for _, c := range []struct {
		tape string
		want []string
	}{
		{"recover-before-swap.json", []string{
			"DELETE /containers/NAME-rotator-new?force=1",
			"GET /containers/NAME-rotator-old/json",
			"GET /containers/NAME/json",
			"POST /containers/OLD/rename?name=NAME",
		}},
		{"recover-after-swap.json", []string{
			"DELETE /containers/NAME-rotator-new?force=1",
			"GET /containers/NAME-rotator-old/json",
			"GET /containers/NAME/json",
			"DELETE /containers/OLD?force=1",
		}},
	} {
		t.Run(c.tape, func(t *testing.T) {
			calls, _, _, err := replay(t, c.tape)
			if err != nil {
				t.Fatalf("RecoverRecreate: %v", err)
			}
			if !slices.Equal(calls, c.want) {
				t.Errorf("calls\n  %s\nwant\n  %s", strings.Join(calls, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
}
