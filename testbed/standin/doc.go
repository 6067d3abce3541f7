// Package standin is a small program that behaves like Qdrant v1.19 (REST only, no gRPC) wherever a key-rotation
// tool touches it: layered configuration (built-in defaults, config/config, config/$RUN_MODE, config/local,
// --config-path, QDRANT__* environment variables), API-key and JWT authentication, the auth whitelist, health
// endpoints, a subset of the collections and points API with Qdrant's envelopes, the audit log with POST
// /audit/logs, and durable storage in an append-only operation log under storage.storage_path. It runs as a single node, or as a peer of a cluster
// (cluster.enabled, below). The facts it follows are in shared/specs/qdrant.md.
//
// # Configuration layers
//
// Every file layer is optional, as in Qdrant (config-rs File::with_name(..).required(false); the built-in defaults
// are the only fixed layer). A layer that cannot be resolved for any reason is dropped without an error: missing,
// a directory, unreadable by the node's user (a uid 1000 node with a root-owned 0600 config/local.yaml), or an
// existing file of that exact name whose extension is not yaml or yml (config/local without extension also hides
// config/local.yaml). A node whose keys are only in a dropped layer starts with no API key and accepts every
// request. Logged, as by Qdrant's own checks: "Config file not found: <name>" (warning) for config/config and
// config/$RUN_MODE, "Config file via --config-path is not found: <path>" (error) for --config-path, nothing for
// config/local. A name is completed by appending .yaml, then .yml ("config/prod.eu" looks for
// config/prod.eu.yaml). A layer that is read is decoded as config-rs 0.15.22 does (a UTF-8 byte order mark
// skipped, invalid UTF-8 replaced by U+FFFD) and must be one YAML document holding a mapping with scalar, unique
// keys (an empty or comment-only file is an empty mapping); anything else aborts the start with exit code 1.
//
// The image is laid out like Qdrant's default image, which runs as root and whose /qdrant belongs to root. Run as
// another user (as Qdrant's -unprivileged variant or Helm's runAsUser 1000 do) the node needs a storage folder
// that user can write: a volume or bind mount it owns (the container harness bind-mounts one it chowns).
//
// # Audit log
//
// The audit section (qdrant.md §11b) is absent by default, as in Qdrant. audit: {enabled, dir (./storage/audit,
// relative to the working directory), rotation daily|hourly, max_log_files (7), trust_forwarded_headers (false),
// log_api (true)} comes from the files and the environment like every key (QDRANT__AUDIT__ENABLED=true). When
// enabled, the folder is created and the file of the current period opened at start (failure: exit 101 with
// Qdrant's panic text); entries go one JSON object per line to audit.YYYY-MM-DD.log or audit.YYYY-MM-DD-HH.log
// (UTC), written synchronously; at start and at each new file the oldest audit* files are removed so that
// max_log_files remain (tracing-appender 0.2.5; ordered by modification time here, by creation time there).
// Timestamps and rotation follow the injectable clock (Options.Now).
//
//   - A request the auth middleware refuses: {timestamp, api: the normalised path, auth_type "None", remote,
//     tracing_id, result "denied", error "Unauthorized: <text>" or "Forbidden: <text>"}.
//   - Each access check inside a handler: method (Qdrant's operation name: list_collections, get_collection,
//     collection_exists, create_collection and delete_collection (no collection field), upsert_points, retrieve,
//     count, scroll, get_collection_cluster, cluster_status, get_audit_logs), api (the path, when log_api and keys
//     are configured), auth_type ApiKey | Jwt | None (no key configured), subject (the JWT's "subject" claim),
//     collection, result ok | denied, error ("Forbidden: ...").
//   - Not logged: exempt paths, /metrics, /telemetry, unknown routes with a valid key, CORS preflights, the
//     internal API.
//   - remote is the peer's IP without port; with trust_forwarded_headers the raw Forwarded, else X-Forwarded-For,
//     header. tracing_id is the first of x-request-id, x-tracing-id, traceparent, cut to 256 bytes.
//
// POST /audit/logs?timeout=SECONDS (manage access, itself logged as get_audit_logs) takes {time_from, time_to
// (RFC 3339; from inclusive, to exclusive), limit (1..10000, default 100; outside: 422 "Validation error in JSON
// body: [limit: value N invalid, must be from 1 to 10000]"), filters {field: exact value}} and answers
// {"result":{"entries":[...]},"status":"ok","time":...}, newest first. As Qdrant: a filter on a field that is not
// one of method, api, auth_type, subject, remote, collection, tracing_id, result, error matches nothing (no error);
// the query and body are checked before the access (read-only key: 403); no audit section is 400 "Bad request:
// Audit logging is not configured", enabled: false is 400 "Bad request: Audit logging is not enabled". Files are
// read newest first by name, a file whose name's period lies outside the time range is skipped, lines that are
// not entries are skipped. In cluster mode every other peer's entries are read over the internal API (each call
// bounded by timeout, default 60) and merged by timestamp; any peer failing fails the request (500 "Service
// internal error: Failed to fetch audit logs from peer <id>: ...", 408 on timeout).
//
// # Cluster mode
//
// With cluster.enabled: true the stand-in is a peer of a cluster, faithful where a key rotation looks and where it
// can break things (qdrant.md §6, §7, §7.1). Real Raft and gRPC are not used; what is modelled:
//
//   - Peers and joining. Each peer has a random u64 peer id (may exceed 2^53, as in Qdrant), persisted with the
//     cluster state in storage/standin-cluster.json (standalone nodes persist a peer id there too). --uri (or
//     QDRANT_URI) is this peer's internal URI, e.g. http://node-0:6335; --bootstrap URI (or QDRANT_BOOTSTRAP)
//     names a peer to join through. A peer without state and without --bootstrap founds a new cluster; a peer
//     joining without --uri is recorded as http://<its address as the bootstrap peer sees it>:<p2p port>/. Joining
//     is retried for 30 s, then the start fails (exit 1). A peer with state rejoins the peers it knows and ignores
//     --bootstrap; a changed --uri is propagated.
//   - Internal API on cluster.p2p.port (default 6335), HTTP/JSON instead of gRPC, same host as service.host:
//     GET /internal/health (exempt from auth, like Qdrant's HealthCheck), POST /internal/heartbeat,
//     /internal/join, /internal/propose, /internal/points/upsert, /internal/points/shard, /internal/transfer/push,
//     /internal/transfer/receive, /internal/audit/logs (see clusterinternal.go).
//     Every outgoing internal call carries "api-key: <this peer's service.api_key>" (the primary key only, never
//     alt_api_key; none if api_key is unset or empty). With service.enforce_internal_auth: true the receiver
//     checks it with the REST rule (api_key or alt_api_key, constant time; JWTs signed with them too) and answers
//     401 with the REST texts (403 for a read-only key); without it the internal API is unauthenticated. Auth
//     failures show in GET /cluster message_send_failures as `Tonic status error: status: Unauthenticated, ...`.
//     In cluster mode an api_key that is not visible ASCII makes the start fail like Qdrant's panic ("API key
//     contains invalid characters for gRPC metadata", exit 101).
//   - Consensus (simplified). The cluster state (peers, collections with shard placement and replica states,
//     shard transfers, term, commit, leader) is changed only by the leader; other peers send proposals to it.
//     Every change increments commit; the leader pushes the new state to all peers before it answers, and every
//     peer sends its state to every other peer every 200 ms (heartbeats, authenticated like all internal calls).
//     A peer adopts any state newer by (term, commit) (equal: the smaller leader id wins), from heartbeats it
//     receives and from the answers to its own. For a peer, another peer is live while its own heartbeats to it
//     succeeded within the last 1 s (Raft needs both directions: a peer that refuses our key is not live for us,
//     even if it can call us). A peer has a quorum when more than half of the known peers (itself included) are
//     live; without one it reports role "Candidate" and leader null, and a leader without one accepts no
//     proposals. Leader rule: the founder is the first leader; a leader stays while it is live (a returning peer
//     with a smaller id does not take over); when the leader has not been heard from for 1 s, the live peer with
//     the smallest id takes over if it has a quorum, with term+1. All live peers report the same leader once
//     heartbeats settle (about 1.2 s after a leader stops).
//   - GET /cluster: {"status":"enabled","peer_id","peers":{"<id>":{"uri"}},"raft_info":{"term","commit",
//     "pending_operations":0,"leader","role":"Leader"|"Follower"|"Candidate","is_voter":true},
//     "consensus_thread_status":{"consensus_thread_status":"working","last_update"},"message_send_failures":
//     {"<uri>":{"count","latest_error","latest_error_timestamp"}}} (an entry is removed once a heartbeat to that
//     peer succeeds). Standalone it stays {"status":"disabled"}.
//   - Collections: create/delete on any peer go through the leader. shard_number (default: number of peers, as
//     Qdrant), replication_factor and write_consistency_factor (defaults storage.collection.*, 1 and 1). Shard s is
//     placed on min(replication_factor, peers) peers: the peers sorted by id, starting at index s, round-robin. A
//     point belongs to shard FNV-1a(id text) mod shard_number. Placement never changes (peers joining later hold
//     no shards). Deleting and re-creating a collection gives it a new generation; peers drop older points.
//     Collections of a standalone storage join a cluster that the peer founds (one shard on it); a peer that
//     joins an existing cluster keeps them out of it.
//   - Writes (Qdrant's ShardReplicaSet::update): a write on any peer goes to every Active or Partial replica of
//     the point's shard that this peer has not disabled (local replica directly, others over the internal API;
//     each replica fsyncs first when wait=true). It needs min(write_consistency_factor, replicas) successes, else
//     the first failure is returned (500 "Service internal error: ..."). Replicas that failed (connection refused,
//     401 from enforce_internal_auth, ...) are disabled locally and proposed Dead; with wait=true the write waits
//     (up to 10 s, e.g. across a leader election) until that is committed. No Active success → 500 "Failed to
//     apply operation to at least one `Active` replica...". Dead replicas get no writes.
//   - Reads (count, retrieve, scroll, GET /collections/{c}): each shard is read from the local replica if it is
//     Active, else from an Active replica on another peer (live ones first); none → 500 "The replica set for
//     shard N on peer P does not have enough active replicas" or "k of k read operations failed: ...".
//   - Recovery (shard transfers, method stream_records, sync true). After a restart, once the peer has a quorum,
//     has heard from the leader and from every peer (or 1 s passed), each local replica that has an Active copy on
//     a live peer is recovered: the leader marks it Partial and lists the transfer {shard_id, from, to, sync,
//     method}; after max(STANDIN_TRANSFER_DELAY, 200 ms) the source pushes its replica to the peer with the
//     source's own key (so with enforce_internal_auth a target that refuses the source's key never recovers), the
//     peer merges it (points written to it directly since the transfer began win) and fsyncs, and the leader marks
//     it Active and drops the transfer. An Active replica with no other Active copy stays Active (it is the source of truth).
//     Later, a local replica that is Dead (or Partial without a running transfer) is recovered the same way when
//     an Active source is live. A failed transfer marks the replica Dead and is retried after 1 s; the leader
//     aborts a transfer whose target has not been heard from for 2 s.
//   - GET /collections/{c}/cluster: {"peer_id","shard_count","local_shards":[{"shard_id","points_count","state"}],
//     "remote_shards":[{"shard_id","peer_id","state"}],"shard_transfers":[...]} with states Active, Dead, Partial;
//     a replica this peer disabled but whose Dead state is not committed yet shows Dead. Standalone: one Active
//     local shard.
//   - /readyz in cluster mode: 503 "some shards are not ready" until the peer has a quorum, has heard from the
//     leader since its start, made its start-up recovery check and every local replica is Active with no transfer
//     running; then 200 "all shards are ready" for good (it latches, as Qdrant's does). /metrics reports
//     cluster_enabled 1.
//
// Not modelled: Raft log replication and voting (the state is copied whole; a new leader may lose changes it had
// not received), peer removal (DELETE /cluster/peer), cluster and shard management APIs (POST
// /collections/{c}/cluster, replicate/move shards), resharding, shard keys, listener/recovery/snapshot replica
// states, write ordering (the ordering parameter is only validated), read consistency and fan-out, snapshot
// transfers over the REST port, internal TLS (cluster.p2p.enable_tls only logs a warning), consensus tick settings,
// the public gRPC API, the deb builds' /etc/qdrant/config layer, the image's entrypoint.sh (its recovery mode) and
// Web UI (no /qdrant/static, so /dashboard is an unknown route: 401 without a key, 404 with one), and the
// -unprivileged image variant (/qdrant owned by uid 1000; the stand-in image has only the root-owned layout). Writes applied by some replicas of a
// failed update stay applied (as in Qdrant).
//
// # Test-only fault knobs
//
// These environment variables are not Qdrant settings; they exist so that tests can provoke failures:
//
//   - STANDIN_START_DELAY: a Go duration (e.g. "3s"). After the storage is loaded the program waits this long
//     before binding the REST port (and, in cluster mode, before joining), simulating a slow start. SIGTERM during
//     the wait exits 0. An invalid value exits 2.
//   - STANDIN_FAIL_IF_SET: comma-separated dotted configuration keys (e.g. "service.alt_api_key"). If any of them
//     has a non-empty value in the final merged configuration, the program prints
//     "standin: refusing to start: <key> is set (STANDIN_FAIL_IF_SET)" to stderr and exits 3.
//   - STANDIN_FAIL_IF_FILE: a path (relative to the working directory). If it exists at start, the program prints
//     "standin: refusing to start: <path> exists (STANDIN_FAIL_IF_FILE)" to stderr and exits 3.
//   - STANDIN_TRANSFER_DELAY: a Go duration; a shard transfer reads its source this long after it started (at
//     least 200 ms), so that tests can see replicas Partial and the transfer listed. An invalid value exits 2.
//
// # Exit codes
//
// 0 after SIGTERM (graceful drain of at most 30 s), 1 for configuration, storage, TLS, bind or bootstrap errors
// (message on stderr prefixed "Error: "), 2 for unknown arguments or invalid knob values, 3 when a fault knob
// refuses the start, 101 for an api_key that is not valid gRPC metadata in cluster mode or an enabled audit log
// that cannot be opened (Qdrant panics), 130 on
// SIGINT and 131 on SIGQUIT (immediate).
package standin
