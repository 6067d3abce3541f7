package standin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The internal API on cluster.p2p.port (HTTP/JSON here; Qdrant uses gRPC). Every call is a POST with a JSON body
// except GET /internal/health:
//
//	GET  /internal/health         liveness (Qdrant's HealthCheck): always exempt from internal auth
//	POST /internal/heartbeat      {"from","state"} -> {"peer_id","state"}: liveness and state exchange
//	POST /internal/join           {"peer_id","uri","port"} -> {"uri","state"}: add a peer (AddPeerToKnown)
//	POST /internal/propose        a cluster operation -> {"state"}: only the leader accepts
//	POST /internal/points/upsert  {"collection","gen","shard","points","wait"} -> {"operation_id"}: replicate
//	POST /internal/points/shard   {"collection","gen","shard"} -> {"points"}: read an Active replica
//	POST /internal/transfer/push  {"collection","gen","shard","to"} -> {"points"}: the target of a shard transfer
//	                              asks the source to push its replica; the source sends it to the target's
//	                              /internal/transfer/receive with the source's key (Qdrant's stream_records)
//	POST /internal/transfer/receive {"collection","gen","shard","from","points"} -> {}: merge a pushed shard
//	POST /internal/audit/logs     {"time_from","time_to","filters","limit"} -> {"entries"}: this peer's audit
//	                              entries, newest first (Qdrant's GetAuditLog)
//
// Errors other than auth are JSON {"error","code"}; auth failures are plain text like the REST API.

const internalBodyLimit = 256 << 20

func (n *clusterNode) listen(cfg *Config) error {
	addr := net.JoinHostPort(cfg.Service.Host, strconv.Itoa(int(cfg.Cluster.P2PPort)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bind internal API (cluster.p2p.port) on %s: %w", addr, err)
	}
	n.addr = ln.Addr()
	n.mux = http.NewServeMux()
	n.mux.HandleFunc("GET /internal/health", n.handleHealth)
	n.mux.HandleFunc("POST /internal/heartbeat", n.handleHeartbeat)
	n.mux.HandleFunc("POST /internal/join", n.handleJoin)
	n.mux.HandleFunc("POST /internal/propose", n.handlePropose)
	n.mux.HandleFunc("POST /internal/points/upsert", n.handleInternalUpsert)
	n.mux.HandleFunc("POST /internal/points/shard", n.handleShardPoints)
	n.mux.HandleFunc("POST /internal/transfer/push", n.handleTransferPush)
	n.mux.HandleFunc("POST /internal/transfer/receive", n.handleTransferReceive)
	n.mux.HandleFunc("POST /internal/audit/logs", n.handleInternalAuditLogs)
	n.hs = &http.Server{Handler: n, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
	go func() { _ = n.hs.Serve(ln) }()
	return nil
}

// ServeHTTP checks the caller's key when enforce_internal_auth is on (same rule as the REST API: api_key or
// alt_api_key, constant time; a read-only key or a read-only JWT is refused), except for the health check.
func (n *clusterNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n.inKeys != nil && r.URL.Path != "/internal/health" {
		acc, aerr := n.inKeys.validate(r.Header, n.now())
		if aerr != nil {
			writeBare(w, aerr.status, aerr.msg)
			return
		}
		if err := acc.checkGlobal(requirements{manage: true}); err != nil {
			writeBare(w, http.StatusForbidden, err.Error())
			return
		}
	}
	n.mux.ServeHTTP(w, r)
}

func internalError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": msg, "code": code})
}

func decodeInternal(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, internalBodyLimit)).Decode(v); err != nil {
		internalError(w, http.StatusBadRequest, "invalid", "bad request body: "+err.Error())
		return false
	}
	return true
}

func (n *clusterNode) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"title": "qdrant - vector search engine", "version": Version,
		"peer_id": n.id})
}

func (n *clusterNode) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	var m heartbeatMsg
	if !decodeInternal(w, r, &m) {
		return
	}
	// Liveness is not taken from incoming heartbeats: a peer is live when this peer can reach it (the sender may be
	// able to call us while we cannot call it, e.g. with mismatched keys).
	n.mu.Lock()
	n.adoptLocked(m.State)
	st := n.state
	n.mu.Unlock()
	writeJSON(w, http.StatusOK, heartbeatReply{PeerID: n.id, State: st})
}

func (n *clusterNode) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req joinReq
	if !decodeInternal(w, r, &req) {
		return
	}
	uri := req.URI
	if uri == "" {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		uri = "http://" + net.JoinHostPort(host, strconv.Itoa(req.Port)) + "/"
	}
	if req.PeerID == 0 {
		internalError(w, http.StatusBadRequest, "invalid", "peer id 0")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), metaOpTimeout)
	defer cancel()
	if err := n.propose(ctx, clusterOp{Kind: opAddPeer, Peer: req.PeerID, URI: uri}); err != nil {
		internalError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	n.mu.Lock()
	st := n.state
	n.mu.Unlock()
	n.log.Info(fmt.Sprintf("Peer %d (%s) joined the cluster", req.PeerID, uri), "target", "qdrant::consensus")
	writeJSON(w, http.StatusOK, joinReply{URI: uri, State: st})
}

func (n *clusterNode) handlePropose(w http.ResponseWriter, r *http.Request) {
	var op clusterOp
	if !decodeInternal(w, r, &op) {
		return
	}
	st, err := n.applyAsLeader(op)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, proposeReply{State: st})
	case errors.Is(err, errNotLeader):
		internalError(w, http.StatusServiceUnavailable, "not_leader", err.Error())
	case errors.Is(err, errOpExists):
		internalError(w, http.StatusConflict, "exists", err.Error())
	case errors.Is(err, errOpMissing):
		internalError(w, http.StatusNotFound, "missing", err.Error())
	case errors.Is(err, errOpConflict):
		internalError(w, http.StatusConflict, "conflict", err.Error())
	default:
		internalError(w, http.StatusBadRequest, "invalid", err.Error())
	}
}

type internalUpsertReq struct {
	Collection string        `json:"collection"`
	Gen        uint64        `json:"gen"`
	Shard      uint32        `json:"shard"`
	Points     []storedPoint `json:"points"`
	Wait       bool          `json:"wait"`
}

type internalUpsertReply struct {
	OperationID uint64 `json:"operation_id"`
}

func (n *clusterNode) handleInternalUpsert(w http.ResponseWriter, r *http.Request) {
	var req internalUpsertReq
	if !decodeInternal(w, r, &req) {
		return
	}
	op, err := n.applyLocal(req)
	var bi *badInput
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, internalUpsertReply{OperationID: op})
	case errors.As(err, &bi):
		internalError(w, http.StatusBadRequest, "invalid", bi.Error())
	case errors.Is(err, errCollectionMissing):
		internalError(w, http.StatusNotFound, "missing", collectionNotFound(req.Collection).Error())
	default:
		internalError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// applyLocal writes points to this peer's replica of a shard (fsync first when wait is set) and records them for a
// running transfer into that replica.
func (n *clusterNode) applyLocal(req internalUpsertReq) (uint64, error) {
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	n.mu.Lock()
	if t := n.tracking[shardKey{req.Collection, req.Gen, req.Shard}]; t != nil {
		for _, p := range req.Points {
			t[p.ID] = true
		}
	}
	n.mu.Unlock()
	return n.store.upsertGen(req.Collection, req.Gen, true, req.Points, req.Wait, false)
}

type shardPointsReq struct {
	Collection string `json:"collection"`
	Gen        uint64 `json:"gen"`
	Shard      uint32 `json:"shard"`
}

type shardPointsReply struct {
	Points []storedPoint `json:"points"`
}

// handleShardPoints serves the points of a local replica that is Active in this peer's view.
func (n *clusterNode) handleShardPoints(w http.ResponseWriter, r *http.Request) {
	var req shardPointsReq
	if !decodeInternal(w, r, &req) {
		return
	}
	pts, err := n.localShardPoints(req.Collection, req.Gen, req.Shard)
	if err != nil {
		internalError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	out := shardPointsReply{Points: make([]storedPoint, len(pts))}
	for i, p := range pts {
		out.Points[i] = *p
	}
	writeJSON(w, http.StatusOK, out)
}

// localShardPoints returns the points of this peer's replica of a shard if it is Active.
func (n *clusterNode) localShardPoints(coll string, gen uint64, shard uint32) ([]*storedPoint, error) {
	n.mu.Lock()
	var state string
	var shardNumber uint32
	if n.state != nil {
		if m, ok := n.state.Collections[coll]; ok && m.Gen == gen {
			shardNumber = m.ShardNumber
			if r := m.replica(shard, n.id); r != nil {
				state = r.State
			}
		}
	}
	n.mu.Unlock()
	if state != replicaActive {
		if state == "" {
			state = "absent"
		}
		return nil, fmt.Errorf("shard %d of collection %s on peer %d is %s", shard, coll, n.id, state)
	}
	pts, ok := n.store.shardPoints(coll, gen, func(id pointID) bool { return shardOf(id, shardNumber) == shard })
	if !ok {
		return nil, fmt.Errorf("shard %d of collection %s is not stored on peer %d", shard, coll, n.id)
	}
	return pts, nil
}

type transferPushReq struct {
	Collection string `json:"collection"`
	Gen        uint64 `json:"gen"`
	Shard      uint32 `json:"shard"`
	To         uint64 `json:"to"`
}

type transferPushReply struct {
	Points int `json:"points"`
}

type transferReceiveReq struct {
	Collection string        `json:"collection"`
	Gen        uint64        `json:"gen"`
	Shard      uint32        `json:"shard"`
	From       uint64        `json:"from"`
	Points     []storedPoint `json:"points"`
}

// handleTransferPush runs on the source of a transfer: it sends its Active replica of the shard to the target.
func (n *clusterNode) handleTransferPush(w http.ResponseWriter, r *http.Request) {
	var req transferPushReq
	if !decodeInternal(w, r, &req) {
		return
	}
	n.mu.Lock()
	var uri string
	if n.state != nil {
		uri = n.state.Peers[req.To]
	}
	n.mu.Unlock()
	if uri == "" {
		internalError(w, http.StatusNotFound, "missing", fmt.Sprintf("unknown peer %d", req.To))
		return
	}
	pts, err := n.localShardPoints(req.Collection, req.Gen, req.Shard)
	if err != nil {
		internalError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	out := transferReceiveReq{Collection: req.Collection, Gen: req.Gen, Shard: req.Shard, From: n.id,
		Points: make([]storedPoint, len(pts))}
	for i, p := range pts {
		out.Points[i] = *p
	}
	ctx, cancel := context.WithTimeout(r.Context(), internalCallTimeout)
	defer cancel()
	if err := n.call(ctx, uri, "/internal/transfer/receive", out, nil); err != nil {
		internalError(w, http.StatusBadGateway, "push_failed", fmt.Sprintf("sending shard %d to peer %d: %v",
			req.Shard, req.To, err))
		return
	}
	writeJSON(w, http.StatusOK, transferPushReply{Points: len(pts)})
}

// handleTransferReceive runs on the target: it merges the pushed points into the replica under transfer; points
// written to it directly since the transfer began are newer and kept.
func (n *clusterNode) handleTransferReceive(w http.ResponseWriter, r *http.Request) {
	var req transferReceiveReq
	if !decodeInternal(w, r, &req) {
		return
	}
	k := shardKey{req.Collection, req.Gen, req.Shard}
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	n.mu.Lock()
	skip := n.tracking[k]
	n.mu.Unlock()
	if skip == nil {
		internalError(w, http.StatusConflict, "conflict", fmt.Sprintf("no transfer of shard %d of %s is running on peer %d",
			req.Shard, req.Collection, n.id))
		return
	}
	pts := make([]storedPoint, 0, len(req.Points))
	for _, p := range req.Points {
		if !skip[p.ID] {
			pts = append(pts, p)
		}
	}
	if _, err := n.store.upsertGen(req.Collection, req.Gen, true, pts, true, true); err != nil {
		internalError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// callError is a failed internal call: status 0 for transport errors.
type callError struct {
	status int
	code   string
	msg    string
}

// Error renders the failure the way Qdrant reports a failed internal gRPC call.
func (e *callError) Error() string {
	switch e.status {
	case 0:
		return "Tonic transport error: " + e.msg
	case http.StatusUnauthorized:
		return fmt.Sprintf("Tonic status error: status: Unauthenticated, message: %q", e.msg)
	case http.StatusForbidden:
		return fmt.Sprintf("Tonic status error: status: PermissionDenied, message: %q", e.msg)
	}
	return e.msg
}

// call POSTs a JSON body to a peer's internal API with this peer's primary api_key and decodes the answer.
func (n *clusterNode) call(ctx context.Context, uri, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, internalCallTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(uri, "/")+path, bytes.NewReader(b))
	if err != nil {
		return &callError{msg: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	// Every internal call may be repeated safely; this lets net/http retry it on a pooled connection the peer
	// closed (a restarted peer), instead of failing an update. The header itself is not sent.
	req.Header["Idempotency-Key"] = nil
	if n.outKey != "" {
		req.Header.Set("api-key", n.outKey)
	}
	res, err := n.client.Do(req)
	if err != nil {
		return &callError{msg: transportText(err)}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, internalBodyLimit))
	if err != nil {
		return &callError{msg: err.Error()}
	}
	if res.StatusCode != http.StatusOK {
		ce := &callError{status: res.StatusCode, msg: strings.TrimSpace(string(data))}
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			ce.msg, ce.code = e.Error, e.Code
		}
		return ce
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &callError{msg: "bad answer: " + err.Error()}
	}
	return nil
}

// transportText shortens a net/http client error to its cause (never includes headers).
func transportText(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "request timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}
