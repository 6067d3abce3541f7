// Package standin is a small program that behaves like Qdrant v1.19 (single node, REST only, no gRPC) wherever a
// key-rotation tool touches it: layered configuration (built-in defaults, config/config, config/$RUN_MODE,
// config/local, --config-path, QDRANT__* environment variables), API-key and JWT authentication, the auth
// whitelist, health endpoints, a subset of the collections and points API with Qdrant's envelopes, and durable
// storage in an append-only operation log under storage.storage_path. The facts it follows are in
// shared/specs/qdrant.md.
//
// # Test-only fault knobs
//
// These environment variables are not Qdrant settings; they exist so that tests can provoke failures:
//
//   - STANDIN_START_DELAY: a Go duration (e.g. "3s"). After the storage is loaded the program waits this long
//     before binding the REST port, simulating a slow start. SIGTERM during the wait exits 0. An invalid value
//     exits 2.
//   - STANDIN_FAIL_IF_SET: comma-separated dotted configuration keys (e.g. "service.alt_api_key"). If any of them
//     has a non-empty value in the final merged configuration, the program prints
//     "standin: refusing to start: <key> is set (STANDIN_FAIL_IF_SET)" to stderr and exits 3.
//   - STANDIN_FAIL_IF_FILE: a path (relative to the working directory). If it exists at start, the program prints
//     "standin: refusing to start: <path> exists (STANDIN_FAIL_IF_FILE)" to stderr and exits 3.
//
// # Exit codes
//
// 0 after SIGTERM (graceful drain of at most 30 s), 1 for configuration, storage, TLS or bind errors (message on
// stderr prefixed "Error: "), 2 for unknown arguments or invalid knob values, 3 when a fault knob refuses the
// start, 130 on SIGINT and 131 on SIGQUIT (immediate).
package standin
