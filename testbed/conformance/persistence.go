package conformance

import (
	"net/http"
	"testing"
)

// persistenceGroup: points written with wait=true survive a restart after SIGKILL or SIGTERM; SIGTERM is a
// graceful exit with code 0 (qdrant.md §8, §9 "completed", §12.8).
func persistenceGroup() group {
	survives := func(graceful bool) func(t *testing.T, f *fixture) {
		return func(t *testing.T, f *fixture) {
			k := newKey(t)
			n, c := startClient(t, f, Setup{Env: map[string]string{"QDRANT__SERVICE__API_KEY": k}})
			name := newName(t, "durable")
			createCollection(t, c, k, name)
			upsertWait(t, c, k, name, 3)
			code := n.Stop(t, graceful)
			switch {
			case graceful && code != 0:
				t.Errorf("exit code after SIGTERM %d, want 0", code)
			case !graceful && code == 0:
				t.Errorf("exit code after SIGKILL 0, want non-zero")
			}
			if _, err := c.try("GET", "/", ""); err == nil {
				t.Errorf("node still answers after Stop")
			}
			n.Restart(t)
			expectResult(t, "exists after restart", c.do(t, "GET", "/collections/"+name+"/exists", "", apiKey(k)), `{"exists":true}`)
			if got := countPoints(t, c, k, name); got != 3 {
				t.Errorf("count after restart: %d, want 3", got)
			}
			r := c.do(t, "POST", "/collections/"+name+"/points", `{"ids":[1,2,3],"with_payload":true,"with_vector":true}`, apiKey(k))
			checkRecords(t, "retrieve after restart", expectOK(t, "retrieve after restart", r), []int{1, 2, 3})
			expectStatus(t, "GET /readyz after restart", c.do(t, "GET", "/readyz", ""), http.StatusOK)
			expectRejected(t, c, "a wrong key after restart", newKey(t))
		}
	}
	return group{name: "persistence", cases: []testCase{
		{name: "wait_true_points_survive_sigkill", spec: "§8 (WAL durability), §9", run: survives(false)},
		{name: "wait_true_points_survive_sigterm_exit_0", spec: "§8 (SIGTERM graceful), §12.8", run: survives(true)},
	}}
}
