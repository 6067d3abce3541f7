package conformance

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"testing"
)

// restGroup: the REST calls of a data-integrity check and their envelopes (qdrant.md §9, §9.1).
func restGroup() group {
	start := func(t *testing.T, target Target) *fixture {
		k := newKey(t)
		n := target.Start(t, Setup{Env: map[string]string{"QDRANT__SERVICE__API_KEY": k}})
		return &fixture{target: target, node: n, keys: keySet{api: k}, client: nodeClient(n)}
	}
	return group{name: "rest", start: start, cases: []testCase{
		{name: "create_collection_result_true", spec: "§9 create", run: func(t *testing.T, f *fixture) {
			name := newName(t, "create")
			r := f.client.do(t, "PUT", "/collections/"+name, createBody, apiKey(f.keys.api))
			expectResult(t, "create collection", r, "true")
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("create collection: Content-Type %q, want application/json", ct)
			}
		}},
		{name: "create_duplicate_409", spec: "§9 create (409 Wrong input)", run: func(t *testing.T, f *fixture) {
			name := newName(t, "dup")
			createCollection(t, f.client, f.keys.api, name)
			r := f.client.do(t, "PUT", "/collections/"+name, createBody, apiKey(f.keys.api))
			expectError(t, "duplicate create", r, http.StatusConflict, "Wrong input: Collection `"+name+"` already exists!", true)
		}},
		{name: "get_missing_404", spec: "§9.1", run: func(t *testing.T, f *fixture) {
			r := f.client.do(t, "GET", "/collections/missing", "", apiKey(f.keys.api))
			expectError(t, "GET /collections/missing", r, http.StatusNotFound, "Not found: Collection `missing` doesn't exist!", true)
		}},
		{name: "point_ops_on_missing_collection_404", spec: "§9 upsert/count (404)", run: func(t *testing.T, f *fixture) {
			name := newName(t, "gone")
			msg := "Not found: Collection `" + name + "` doesn't exist!"
			expectError(t, "upsert into a missing collection", f.client.do(t, "PUT", "/collections/"+name+"/points?wait=true", points(1), apiKey(f.keys.api)), http.StatusNotFound, msg, true)
			expectError(t, "count in a missing collection", f.client.do(t, "POST", "/collections/"+name+"/points/count", `{"exact":true}`, apiKey(f.keys.api)), http.StatusNotFound, msg, true)
		}},
		{name: "delete_true_then_false", spec: "§9 delete (false if it did not exist)", run: func(t *testing.T, f *fixture) {
			name := newName(t, "del")
			createCollection(t, f.client, f.keys.api, name)
			expectResult(t, "delete existing collection", f.client.do(t, "DELETE", "/collections/"+name, "", apiKey(f.keys.api)), "true")
			expectResult(t, "delete it again", f.client.do(t, "DELETE", "/collections/"+name, "", apiKey(f.keys.api)), "false")
			expectResult(t, "delete a never-created collection", f.client.do(t, "DELETE", "/collections/"+newName(t, "never"), "", apiKey(f.keys.api)), "false")
		}},
		{name: "exists_true_false", spec: "§9 exists", run: func(t *testing.T, f *fixture) {
			name := newName(t, "exists")
			expectResult(t, "exists before create", f.client.do(t, "GET", "/collections/"+name+"/exists", "", apiKey(f.keys.api)), `{"exists":false}`)
			createCollection(t, f.client, f.keys.api, name)
			expectResult(t, "exists after create", f.client.do(t, "GET", "/collections/"+name+"/exists", "", apiKey(f.keys.api)), `{"exists":true}`)
		}},
		{name: "list_collections", spec: "§9 list", run: func(t *testing.T, f *fixture) {
			name := newName(t, "list")
			createCollection(t, f.client, f.keys.api, name)
			if got := listCollections(t, f.client, apiKey(f.keys.api)); !slices.Contains(got, name) {
				t.Errorf("GET /collections: %v does not list the created collection %s", got, name)
			}
		}},
		{name: "upsert_default_acknowledged", spec: "§9 upsert (wait=false default)", run: func(t *testing.T, f *fixture) {
			name := newName(t, "ack")
			createCollection(t, f.client, f.keys.api, name)
			res := expectOK(t, "upsert without wait", f.client.do(t, "PUT", "/collections/"+name+"/points", points(2), apiKey(f.keys.api)))
			expectUpdateResult(t, "upsert without wait", res, "acknowledged")
		}},
		{name: "upsert_wait_completed", spec: "§9 upsert, §9.1", run: func(t *testing.T, f *fixture) {
			name := newName(t, "wait")
			createCollection(t, f.client, f.keys.api, name)
			res := expectOK(t, "upsert wait=true", f.client.do(t, "PUT", "/collections/"+name+"/points?wait=true", points(2), apiKey(f.keys.api)))
			expectUpdateResult(t, "upsert wait=true", res, "completed")
		}},
		{name: "count_exact", spec: "§9 count", run: func(t *testing.T, f *fixture) {
			name := newName(t, "count")
			createCollection(t, f.client, f.keys.api, name)
			if n := countPoints(t, f.client, f.keys.api, name); n != 0 {
				t.Errorf("count of an empty collection: %d, want 0", n)
			}
			upsertWait(t, f.client, f.keys.api, name, 3)
			if n := countPoints(t, f.client, f.keys.api, name); n != 3 {
				t.Errorf("count after upserting 3 points: %d, want 3", n)
			}
		}},
		{name: "retrieve_points", spec: "§9 retrieve", run: func(t *testing.T, f *fixture) {
			name := newName(t, "get")
			createCollection(t, f.client, f.keys.api, name)
			upsertWait(t, f.client, f.keys.api, name, 3)
			r := f.client.do(t, "POST", "/collections/"+name+"/points", `{"ids":[1,3,99],"with_payload":true,"with_vector":true}`, apiKey(f.keys.api))
			checkRecords(t, "retrieve ids 1,3,99", expectOK(t, "retrieve", r), []int{1, 3})
		}},
		{name: "get_collection_info", spec: "§9 get", run: func(t *testing.T, f *fixture) {
			name := newName(t, "info")
			createCollection(t, f.client, f.keys.api, name)
			upsertWait(t, f.client, f.keys.api, name, 3)
			res := expectOK(t, "GET /collections/{c}", f.client.do(t, "GET", "/collections/"+name, "", apiKey(f.keys.api)))
			var info struct {
				Status      string `json:"status"`
				PointsCount *int   `json:"points_count"`
				Config      struct {
					Params struct {
						Vectors struct {
							Size     int    `json:"size"`
							Distance string `json:"distance"`
						} `json:"vectors"`
					} `json:"params"`
				} `json:"config"`
			}
			if res == nil || json.Unmarshal(res, &info) != nil {
				t.Fatalf("GET /collections/{c}: result %s is not a CollectionInfo", snippet(res))
			}
			if !slices.Contains([]string{"green", "yellow", "grey"}, info.Status) {
				t.Errorf("collection status %q, want green, yellow or grey", info.Status)
			}
			if info.PointsCount == nil || *info.PointsCount != 3 {
				t.Errorf("points_count %v, want 3", info.PointsCount)
			}
			if v := info.Config.Params.Vectors; v.Size != 4 || v.Distance != "Cosine" {
				t.Errorf("config.params.vectors = %+v, want size 4, distance Cosine", v)
			}
		}},
		{name: "malformed_json_400", spec: "§9 (Format error in JSON body => 400)", run: func(t *testing.T, f *fixture) {
			name := newName(t, "badjson")
			createCollection(t, f.client, f.keys.api, name)
			r := f.client.do(t, "PUT", "/collections/"+name+"/points?wait=true", `{"points": [`, apiKey(f.keys.api))
			expectError(t, "upsert with malformed JSON", r, http.StatusBadRequest, "Format error in JSON body", false)
			r = f.client.do(t, "PUT", "/collections/"+newName(t, "badjson"), `{"vectors":`, apiKey(f.keys.api))
			expectError(t, "create with malformed JSON", r, http.StatusBadRequest, "Format error in JSON body", false)
		}},
		{name: "validation_error_422", spec: "§9 (validation => 422 Validation error in JSON body)", run: func(t *testing.T, f *fixture) {
			name := newName(t, "invalid")
			r := f.client.do(t, "PUT", "/collections/"+name, `{"vectors":{"size":65537,"distance":"Cosine"}}`, apiKey(f.keys.api))
			expectError(t, "create with vector size 65537", r, http.StatusUnprocessableEntity, "Validation error in JSON body", false)
			expectResult(t, "exists after the refused create", f.client.do(t, "GET", "/collections/"+name+"/exists", "", apiKey(f.keys.api)), `{"exists":false}`)
		}},
		{name: "wrong_vector_dimension_400", spec: "§9 upsert (Vector dimension error)", run: func(t *testing.T, f *fixture) {
			name := newName(t, "dim")
			createCollection(t, f.client, f.keys.api, name)
			r := f.client.do(t, "PUT", "/collections/"+name+"/points?wait=true", `{"points":[{"id":1,"vector":[0.1,0.2,0.3]}]}`, apiKey(f.keys.api))
			expectError(t, "upsert with a 3-dim vector into size 4", r, http.StatusBadRequest, "Vector dimension error", false)
			if n := countPoints(t, f.client, f.keys.api, name); n != 0 {
				t.Errorf("count after the refused upsert: %d, want 0", n)
			}
		}},
	}}
}

// expectUpdateResult checks an UpdateResult {"operation_id":N,"status":status}.
func expectUpdateResult(t *testing.T, what string, res json.RawMessage, status string) {
	t.Helper()
	var ur struct {
		OperationID *uint64 `json:"operation_id"`
		Status      string  `json:"status"`
	}
	if res == nil || json.Unmarshal(res, &ur) != nil {
		t.Errorf("%s: result %s is not an UpdateResult", what, snippet(res))
		return
	}
	if ur.Status != status {
		t.Errorf("%s: status %q, want %q", what, ur.Status, status)
	}
	if ur.OperationID == nil {
		t.Errorf("%s: result %s has no numeric operation_id", what, snippet(res))
	}
}

// checkRecords checks a retrieve result holds exactly the points ids as written by points(): payload
// {"n": id} and a 4-dimensional vector.
func checkRecords(t *testing.T, what string, res json.RawMessage, ids []int) {
	t.Helper()
	var recs []struct {
		ID      int            `json:"id"`
		Payload map[string]int `json:"payload"`
		Vector  []float64      `json:"vector"`
	}
	if res == nil || json.Unmarshal(res, &recs) != nil {
		t.Errorf("%s: result %s is not a list of records", what, snippet(res))
		return
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	var got []int
	for _, r := range recs {
		got = append(got, r.ID)
		if r.Payload["n"] != r.ID || len(r.Payload) != 1 {
			t.Errorf("%s: point %d payload %v, want {\"n\": %d}", what, r.ID, r.Payload, r.ID)
		}
		if len(r.Vector) != 4 {
			t.Errorf("%s: point %d vector has %d dimensions, want 4", what, r.ID, len(r.Vector))
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("%s: ids %v, want %v", what, got, ids)
	}
}
