package standin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Version is the Qdrant version the stand-in imitates.
const Version = "1.19.0"

// routes registers the REST subset on mux. Patterns listed in exempt need no credentials (Qdrant's whitelist:
// "/" and "/healthz" exact, "/readyz" and "/livez" prefixes, matched on the route pattern).
func (s *server) routes(mux *http.ServeMux) {
	handle := func(pattern string, exempt bool, h http.HandlerFunc) {
		mux.HandleFunc(pattern, h)
		s.patterns[pattern] = true
		if exempt {
			s.exempt[pattern] = true
		}
	}
	handle("GET /{$}", true, s.handleRoot)
	handle("GET /healthz", true, s.handleHealthz)
	handle("GET /livez", true, s.handleHealthz)
	handle("GET /readyz", true, s.handleReadyz)
	handle("GET /collections", false, s.handleListCollections)
	handle("GET /collections/{name}", false, s.handleGetCollection)
	handle("PUT /collections/{name}", false, s.handleCreateCollection)
	handle("DELETE /collections/{name}", false, s.handleDeleteCollection)
	handle("GET /collections/{name}/exists", false, s.handleCollectionExists)
	handle("PUT /collections/{name}/points", false, s.handleUpsert)
	handle("POST /collections/{name}/points", false, s.handleRetrieve)
	handle("POST /collections/{name}/points/count", false, s.handleCount)
	handle("POST /collections/{name}/points/scroll", false, s.handleScroll)
	handle("GET /collections/{name}/cluster", false, s.handleCollectionCluster)
	handle("GET /cluster", false, s.handleCluster)
	handle("GET /telemetry", false, s.handleTelemetry)
	handle("GET /metrics", false, s.handleMetrics)
	handle("POST /audit/logs", false, s.handleAuditLogs)
}

func (s *server) handleRoot(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Title   string `json:"title"`
		Version string `json:"version"`
		Commit  string `json:"commit"`
	}{"qdrant - vector search engine", Version, "standin"})
}

func (s *server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writePlain(w, http.StatusOK, "healthz check passed")
}

// handleReadyz: standalone always ready; in cluster mode 503 until the peer's replicas are ready, then 200 for good.
func (s *server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	if s.cluster != nil && !s.cluster.readyNow() {
		writePlain(w, http.StatusServiceUnavailable, "some shards are not ready")
		return
	}
	writePlain(w, http.StatusOK, "all shards are ready")
}

func (s *server) handleListCollections(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	acc := s.accessLogged(r, "list_collections")
	type item struct {
		Name string `json:"name"`
	}
	list := []item{}
	for _, n := range acc.visible(s.collectionNames()) {
		list = append(list, item{n})
	}
	writeResult(w, start, map[string]any{"collections": list})
}

func (s *server) handleGetCollection(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	if err := s.checkCollection(r, "get_collection", name, requirements{}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	v, err := s.collectionView(r.Context(), name)
	if err != nil {
		writeStorageError(w, start, err)
		return
	}
	writeResult(w, start, collectionInfo(v))
}

func collectionInfo(v *collectionView) map[string]any {
	return map[string]any{
		"status":                "green",
		"optimizer_status":      "ok",
		"indexed_vectors_count": 0,
		"points_count":          len(v.points),
		"segments_count":        1,
		"config": map[string]any{
			"params": map[string]any{
				"vectors":                  v.vectors.restJSON(),
				"shard_number":             v.shardNumber,
				"replication_factor":       v.replicationFactor,
				"write_consistency_factor": v.writeConsistencyFactor,
				"on_disk_payload":          true,
			},
			"hnsw_config": map[string]any{
				"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
				"max_indexing_threads": 0, "on_disk": false,
			},
			"optimizer_config": map[string]any{
				"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
				"max_segment_size": nil, "memmap_threshold": nil, "indexing_threshold": 10000,
				"flush_interval_sec": 5, "max_optimization_threads": nil,
			},
			"wal_config":          map[string]any{"wal_capacity_mb": 32, "wal_segments_ahead": 0},
			"quantization_config": nil,
		},
		"payload_schema": map[string]any{},
	}
}

func (s *server) handleCollectionExists(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	if err := s.checkCollection(r, "collection_exists", name, requirements{}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	writeResult(w, start, map[string]bool{"exists": s.collectionExists(name)})
}

func (s *server) handleCreateCollection(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	if e := checkTimeout(r.URL.Query()); e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	if e := validateCollectionName(name); e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	body, e := readJSONBody(r, s.maxBody)
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	vc, e := parseVectorsConfig(body)
	var params collParams
	if e == nil && s.cluster != nil {
		params, e = parseCollParams(body)
	}
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	if err := s.checkGlobal(r, "create_collection", requirements{manage: true}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	var err error
	if s.cluster != nil {
		err = s.cluster.createCollection(r.Context(), name, vc, params)
		if errors.Is(err, errOpExists) {
			err = errCollectionExists
		}
	} else {
		err = s.store.createCollection(name, vc)
	}
	switch {
	case errors.Is(err, errCollectionExists):
		writeError(w, http.StatusConflict, start, "Wrong input: Collection `"+name+"` already exists!")
	case err != nil:
		s.log.Error("create collection failed", "error", err)
		writeStorageError(w, start, err)
	default:
		writeResult(w, start, true)
	}
}

func (s *server) handleDeleteCollection(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	if e := checkTimeout(r.URL.Query()); e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	if err := s.checkGlobal(r, "delete_collection", requirements{manage: true}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	var existed bool
	var err error
	if s.cluster != nil {
		existed, err = s.cluster.deleteCollection(r.Context(), name)
	} else {
		existed, err = s.store.deleteCollection(name)
	}
	if err != nil {
		s.log.Error("delete collection failed", "error", err)
		writeStorageError(w, start, err)
		return
	}
	writeResult(w, start, existed)
}

func (s *server) handleUpsert(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	q := r.URL.Query()
	wait, e := queryBool(q, "wait")
	if e == nil {
		e = checkTimeout(q)
	}
	if e == nil {
		e = checkOrdering(q)
	}
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	body, e := readJSONBody(r, s.maxBody)
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	points, e := parseUpsertBody(body)
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	if err := s.checkCollection(r, "upsert_points", name, requirements{write: true}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	var op uint64
	var err error
	if s.cluster != nil {
		op, err = s.cluster.upsert(r.Context(), name, points, wait)
	} else {
		op, err = s.store.upsert(name, points, wait)
	}
	switch {
	case errors.Is(err, errCollectionMissing):
		writeStorageError(w, start, collectionNotFound(name))
		return
	case err != nil:
		writeStorageError(w, start, err)
		return
	}
	status := "acknowledged"
	if wait {
		status = "completed"
	}
	writeResult(w, start, map[string]any{"operation_id": op, "status": status})
}

func (s *server) handleCount(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	body, e := readJSONBody(r, s.maxBody)
	if e == nil {
		_, e = optBool(body, "exact", true)
	}
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	if err := s.checkCollection(r, "count", name, requirements{}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	if unsupportedFilter(w, start, body) {
		return
	}
	var n int
	if s.cluster != nil {
		v, err := s.cluster.view(r.Context(), name)
		if err != nil {
			writeStorageError(w, start, err)
			return
		}
		n = len(v.points)
	} else {
		var ok bool
		if n, ok = s.store.count(name); !ok {
			writeStorageError(w, start, collectionNotFound(name))
			return
		}
	}
	writeResult(w, start, map[string]int{"count": n})
}

func (s *server) handleRetrieve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	body, e := readJSONBody(r, s.maxBody)
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	rawIDs, ok := body["ids"]
	if !ok {
		writeError(w, http.StatusBadRequest, time.Time{}, "Format error in JSON body: missing field `ids`")
		return
	}
	var idList []json.RawMessage
	if err := json.Unmarshal(rawIDs, &idList); err != nil {
		writeError(w, http.StatusBadRequest, time.Time{}, "Format error in JSON body: invalid type: "+jsonKind(rawIDs)+", expected a sequence")
		return
	}
	ids := make([]pointID, 0, len(idList))
	for _, raw := range idList {
		id, err := parsePointID(raw)
		if err != nil {
			writeError(w, http.StatusBadRequest, time.Time{}, "Format error in JSON body: "+err.Error())
			return
		}
		ids = append(ids, id)
	}
	withPayload, e := parseSelector(body, "with_payload", true)
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	withVector, e := parseSelector(body, "with_vector", false)
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	if err := s.checkCollection(r, "retrieve", name, requirements{}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	v, err := s.collectionView(r.Context(), name)
	if err != nil {
		writeStorageError(w, start, err)
		return
	}
	byID := make(map[pointID]*storedPoint, len(v.points))
	for _, p := range v.points {
		byID[p.ID] = p
	}
	out := []map[string]any{}
	seen := map[pointID]bool{}
	for _, id := range ids {
		p, ok := byID[id]
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, record(v, p, withPayload, withVector))
	}
	writeResult(w, start, out)
}

func (s *server) handleScroll(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	body, e := readJSONBody(r, s.maxBody)
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	limit := uint64(10)
	if raw, ok := present(body, "limit"); ok {
		n, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, time.Time{}, "Format error in JSON body: invalid type: "+jsonKind(raw)+", expected usize")
			return
		}
		if n < 1 {
			writeError(w, http.StatusUnprocessableEntity, time.Time{},
				"Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]")
			return
		}
		limit = n
	}
	var offset *pointID
	if raw, ok := present(body, "offset"); ok {
		id, err := parsePointID(raw)
		if err != nil {
			writeError(w, http.StatusBadRequest, time.Time{}, "Format error in JSON body: "+err.Error())
			return
		}
		offset = &id
	}
	withPayload, e := parseSelector(body, "with_payload", true)
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	withVector, e := parseSelector(body, "with_vector", false)
	if e != nil {
		writeError(w, e.status, time.Time{}, e.msg)
		return
	}
	if err := s.checkCollection(r, "scroll", name, requirements{}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	if unsupportedFilter(w, start, body) {
		return
	}
	v, err := s.collectionView(r.Context(), name)
	if err != nil {
		writeStorageError(w, start, err)
		return
	}
	i := 0
	if offset != nil {
		i = sort.Search(len(v.points), func(k int) bool { return !v.points[k].ID.less(*offset) })
	}
	out := []map[string]any{}
	var next any
	for ; i < len(v.points); i++ {
		if uint64(len(out)) == limit {
			next = v.points[i].ID
			break
		}
		out = append(out, record(v, v.points[i], withPayload, withVector))
	}
	writeResult(w, start, struct {
		Points         []map[string]any `json:"points"`
		NextPageOffset any              `json:"next_page_offset"`
	}{out, next})
}

// record renders a point as Qdrant's Record: payload and vector are null unless requested.
func record(v *collectionView, p *storedPoint, withPayload, withVector selector) map[string]any {
	rec := map[string]any{"id": p.ID, "payload": nil, "vector": nil}
	if withPayload.enabled() {
		rec["payload"] = selectPayload(p.Payload, withPayload)
	}
	if withVector.enabled() {
		if v.vectors.Single != nil {
			if vec, ok := p.Vectors[""]; ok && withVector.has("") {
				rec["vector"] = vec
			}
		} else {
			named := map[string][]float32{}
			for n, vec := range p.Vectors {
				if withVector.has(n) {
					named[n] = vec
				}
			}
			rec["vector"] = named
		}
	}
	return rec
}

func selectPayload(raw json.RawMessage, sel selector) any {
	if len(raw) == 0 {
		return map[string]any{}
	}
	if sel.all {
		return raw
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return map[string]any{}
	}
	out := map[string]json.RawMessage{}
	for k, v := range m {
		if sel.names[k] {
			out[k] = v
		}
	}
	return out
}

func unsupportedFilter(w http.ResponseWriter, start time.Time, body map[string]json.RawMessage) bool {
	if _, ok := present(body, "filter"); ok {
		writeError(w, http.StatusBadRequest, start, "Bad request: the Qdrant stand-in does not support filters")
		return true
	}
	return false
}

func (s *server) handleCluster(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if err := s.checkGlobal(r, "cluster_status", requirements{}); err != nil {
		writeStorageError(w, start, err)
		return
	}
	if s.cluster != nil {
		writeResult(w, start, s.cluster.clusterStatus())
		return
	}
	writeResult(w, start, map[string]string{"status": "disabled"})
}

func (s *server) handleTelemetry(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	names := accessFrom(r).visible(s.collectionNames()) // not audited, as Qdrant's telemetry
	writeResult(w, start, map[string]any{
		"id":          "standin",
		"app":         map[string]any{"name": "qdrant", "version": Version},
		"collections": map[string]any{"number_of_collections": len(names)},
	})
}

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if err := accessFrom(r).checkGlobal(requirements{}); err != nil { // not audited: "too noisy" (Qdrant)
		writeStorageError(w, start, err)
		return
	}
	names := s.collectionNames()
	points := 0
	for _, n := range s.store.names() {
		c, _ := s.store.count(n)
		points += c
	}
	clusterEnabled := 0
	if s.cluster != nil {
		clusterEnabled = 1
	}
	var b strings.Builder
	b.WriteString("# HELP app_info information about qdrant server\n# TYPE app_info gauge\n")
	fmt.Fprintf(&b, "app_info{name=\"qdrant\",version=\"%s\"} 1\n", Version)
	b.WriteString("# HELP collections_total number of collections\n# TYPE collections_total gauge\n")
	fmt.Fprintf(&b, "collections_total %d\n", len(names))
	b.WriteString("# HELP collections_vector_total total number of vectors in all collections\n# TYPE collections_vector_total gauge\n")
	fmt.Fprintf(&b, "collections_vector_total %d\n", points)
	fmt.Fprintf(&b, "# HELP cluster_enabled is cluster support enabled\n# TYPE cluster_enabled gauge\ncluster_enabled %d\n", clusterEnabled)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(b.String()))
}

// queryBool parses an optional boolean query parameter (serde_urlencoded: exactly "true" or "false").
func queryBool(q url.Values, k string) (bool, *bodyError) {
	if !q.Has(k) {
		return false, nil
	}
	switch q.Get(k) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, &bodyError{http.StatusBadRequest,
		"Deserialize error in query parameters: provided string was not `true` or `false`"}
}

func checkTimeout(q url.Values) *bodyError {
	if !q.Has("timeout") {
		return nil
	}
	if _, err := strconv.ParseUint(q.Get("timeout"), 10, 64); err != nil {
		return &bodyError{http.StatusBadRequest, "Deserialize error in query parameters: invalid digit found in string"}
	}
	return nil
}

func checkOrdering(q url.Values) *bodyError {
	if !q.Has("ordering") {
		return nil
	}
	switch v := q.Get("ordering"); v {
	case "weak", "medium", "strong":
		return nil
	default:
		return &bodyError{http.StatusBadRequest, "Deserialize error in query parameters: unknown variant `" + v +
			"`, expected one of `weak`, `medium`, `strong`"}
	}
}

// validateCollectionName applies Qdrant's collection name rules (length 1..255, no path-like characters).
func validateCollectionName(name string) *bodyError {
	if name == "" || len(name) > 255 {
		return &bodyError{http.StatusUnprocessableEntity,
			"Validation error in path parameters: [collection_name: length must be between 1 and 255]"}
	}
	for _, c := range name {
		if strings.ContainsRune(`<>:"/\|?*`, c) || c < 0x20 {
			return &bodyError{http.StatusUnprocessableEntity, fmt.Sprintf(
				"Validation error in path parameters: [collection_name: collection name cannot contain %q char]", c)}
		}
	}
	return nil
}

// parseVectorsConfig reads the "vectors" field of a create request: absent, a single {"size","distance"} or a map
// of named vector parameters.
func parseVectorsConfig(body map[string]json.RawMessage) (vectorsConfig, *bodyError) {
	raw, ok := present(body, "vectors")
	if !ok {
		return vectorsConfig{}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return vectorsConfig{}, formatError("data did not match any variant of untagged enum VectorsConfig")
	}
	if p, e := parseVectorParams(raw); e == nil {
		if p.Size < 1 || p.Size > 65536 {
			return vectorsConfig{}, validationError(fmt.Sprintf("vectors.size: value %d invalid, must be from 1 to 65536", p.Size))
		}
		return vectorsConfig{Single: p}, nil
	}
	named := map[string]*vectorParams{}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var invalid []string
	for _, n := range names {
		p, e := parseVectorParams(m[n])
		if e != nil {
			return vectorsConfig{}, formatError("data did not match any variant of untagged enum VectorsConfig")
		}
		if p.Size < 1 || p.Size > 65536 {
			invalid = append(invalid, fmt.Sprintf("vectors.%s.size: value %d invalid, must be from 1 to 65536", n, p.Size))
		}
		named[n] = p
	}
	if len(invalid) > 0 {
		return vectorsConfig{}, validationError(invalid...)
	}
	return vectorsConfig{Named: named}, nil
}

func parseVectorParams(raw json.RawMessage) (*vectorParams, *bodyError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, formatError("expected vector params")
	}
	sizeRaw, ok := m["size"]
	if !ok {
		return nil, formatError("missing field `size`")
	}
	size, err := strconv.ParseUint(strings.TrimSpace(string(sizeRaw)), 10, 64)
	if err != nil {
		return nil, formatError("invalid type: %s, expected u64", jsonKind(sizeRaw))
	}
	var dist string
	if err := json.Unmarshal(m["distance"], &dist); err != nil || !distances[dist] {
		return nil, formatError("unknown variant for field `distance`, expected one of `Cosine`, `Euclid`, `Dot`, `Manhattan`")
	}
	return &vectorParams{Size: size, Distance: dist}, nil
}

// parseUpsertBody reads {"points":[{"id","vector","payload"}]} or {"batch":{"ids","vectors","payloads"}}.
func parseUpsertBody(body map[string]json.RawMessage) ([]storedPoint, *bodyError) {
	rawPoints, hasPoints := body["points"]
	rawBatch, hasBatch := body["batch"]
	switch {
	case hasPoints && !hasBatch:
		var list []map[string]json.RawMessage
		if err := json.Unmarshal(rawPoints, &list); err != nil {
			return nil, formatError("data did not match any variant of untagged enum PointInsertOperations")
		}
		out := make([]storedPoint, 0, len(list))
		for _, item := range list {
			if item == nil {
				return nil, formatError("data did not match any variant of untagged enum PointInsertOperations")
			}
			rawID, ok := item["id"]
			if !ok {
				return nil, formatError("missing field `id`")
			}
			id, err := parsePointID(rawID)
			if err != nil {
				return nil, formatError("%s", err.Error())
			}
			rawVec, ok := item["vector"]
			if !ok {
				return nil, formatError("missing field `vector`")
			}
			vecs, e := parseVectorStruct(rawVec)
			if e != nil {
				return nil, e
			}
			payload, e := parsePayload(item["payload"])
			if e != nil {
				return nil, e
			}
			out = append(out, storedPoint{ID: id, Vectors: vecs, Payload: payload})
		}
		return out, nil
	case hasBatch && !hasPoints:
		return parseBatch(rawBatch)
	}
	return nil, formatError("data did not match any variant of untagged enum PointInsertOperations")
}

func parseBatch(raw json.RawMessage) ([]storedPoint, *bodyError) {
	var b struct {
		IDs      []json.RawMessage `json:"ids"`
		Vectors  json.RawMessage   `json:"vectors"`
		Payloads []json.RawMessage `json:"payloads"`
	}
	if err := json.Unmarshal(raw, &b); err != nil || b.IDs == nil || b.Vectors == nil {
		return nil, formatError("data did not match any variant of untagged enum PointInsertOperations")
	}
	n := len(b.IDs)
	vecs := make([]map[string][]float32, n)
	var unnamed [][]float32
	if err := json.Unmarshal(b.Vectors, &unnamed); err == nil {
		if len(unnamed) != n {
			return nil, validationError("batch: number of ids and vectors must be equal")
		}
		for i, v := range unnamed {
			vecs[i] = map[string][]float32{"": v}
		}
	} else {
		var named map[string][][]float32
		if err := json.Unmarshal(b.Vectors, &named); err != nil {
			return nil, formatError("data did not match any variant of untagged enum BatchVectorStruct")
		}
		for i := range vecs {
			vecs[i] = map[string][]float32{}
		}
		for name, list := range named {
			if len(list) != n {
				return nil, validationError("batch: number of ids and vectors must be equal")
			}
			for i, v := range list {
				vecs[i][name] = v
			}
		}
	}
	if b.Payloads != nil && len(b.Payloads) != n {
		return nil, validationError("batch: number of ids and payloads must be equal")
	}
	out := make([]storedPoint, 0, n)
	for i, rawID := range b.IDs {
		id, err := parsePointID(rawID)
		if err != nil {
			return nil, formatError("%s", err.Error())
		}
		var payload json.RawMessage
		if b.Payloads != nil {
			p, e := parsePayload(b.Payloads[i])
			if e != nil {
				return nil, e
			}
			payload = p
		}
		out = append(out, storedPoint{ID: id, Vectors: vecs[i], Payload: payload})
	}
	return out, nil
}

// parseVectorStruct reads a dense vector (unnamed) or a map of named dense vectors.
func parseVectorStruct(raw json.RawMessage) (map[string][]float32, *bodyError) {
	var dense []float32
	if err := json.Unmarshal(raw, &dense); err == nil && dense != nil {
		return map[string][]float32{"": dense}, nil
	}
	var named map[string][]float32
	if err := json.Unmarshal(raw, &named); err == nil && named != nil {
		return named, nil
	}
	return nil, formatError("data did not match any variant of untagged enum VectorStruct")
}

func parsePayload(raw json.RawMessage) (json.RawMessage, *bodyError) {
	if raw == nil || isNull(raw) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, formatError("invalid type: %s, expected a map for field `payload`", jsonKind(raw))
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, formatError("%s", err.Error())
	}
	return buf.Bytes(), nil
}
