# Vault Agent, process-supervisor variant (Vault 1.14: BETA): the agent starts the app itself with QDRANT_API_KEY
# (and QDRANT_API_KEY_VERSION, QDRANT_HOST, QDRANT_PORT) in its environment, and restarts it whenever the key
# changes. The key never touches the disk. The app is the agent's child: run the agent where you would run the app
# (systemd ExecStart=, a container's command); the agent exits with the app's exit code. This mode allows no file
# template blocks (and no API proxy).
# Run: vault agent -config=agent.hcl   (../README.md: which variant to pick, and the grace each one needs)
#
# Placeholders: replace every @NAME@ before use (`grep -n '@[A-Z_]*@' agent.hcl` lists what is left):
#   @VAULT_ADDR@    Vault's address, e.g. https://vault.internal:8200
#   @APPROLE_DIR@   the folder holding role_id and secret_id (deploy/vault/setup.sh writes <secret-dir>/<consumer>/)
#   @DEPLOYMENT@    the deployment's name in rotator.yml, e.g. prod
#   @RECORD@        admin, read-only or keys/<name>: the record the consumer's AppRole may read (setup.sh prints it)
#   @QDRANT_HOST@   passed to the app as is: the host (or load balancer) it sends requests to
#   @QDRANT_PORT@   passed to the app as is: 6333 (REST) or 6334 (gRPC)
# and edit the app's command in the exec block. The KV v2 mount "secret" and the rotator's prefix "qdrant" are
# written out (secret/data/qdrant/...); change them if rotator.yml sets another vault.mount or vault.prefix.

vault {
  address = "@VAULT_ADDR@"
  # ca_cert = "/etc/vault-agent/ca.pem"   # Vault over HTTPS with a private CA
}

auto_auth {
  method {
    type       = "approle"
    mount_path = "auth/approle"
    config = {
      role_id_file_path   = "@APPROLE_DIR@/role_id"
      secret_id_file_path = "@APPROLE_DIR@/secret_id"
      # Keep the file: the agent logs in again with it whenever its token expires.
      remove_secret_id_file_after_reading = false
    }
  }
}

template_config {
  # KV v2 records carry no lease, so the agent re-reads the record every 0.85-0.95 x this interval and restarts
  # the app only when the key changed, 2 s after it saw the change (a fixed debounce). The rotator's grace must be
  # at least this interval + 2 s + the app's restart time (its stop, at most 30 s before SIGKILL, and its start).
  static_secret_render_interval = "30s"
  # Give up (stop the app and exit non-zero) rather than keep running on a stale key when Vault cannot be reached
  # or a field is missing (with error_on_missing_key below).
  exit_on_retry_failure = true
}

env_template "QDRANT_API_KEY" {
  contents             = "{{ with secret \"secret/data/qdrant/deployments/@DEPLOYMENT@/@RECORD@\" }}{{ .Data.data.api_key }}{{ end }}"
  error_on_missing_key = true
}

env_template "QDRANT_API_KEY_VERSION" {
  contents             = "{{ with secret \"secret/data/qdrant/deployments/@DEPLOYMENT@/@RECORD@\" }}{{ .Data.metadata.version }}{{ end }}"
  error_on_missing_key = true
}

env_template "QDRANT_HOST" {
  contents             = "@QDRANT_HOST@"
  error_on_missing_key = true
}

env_template "QDRANT_PORT" {
  contents             = "@QDRANT_PORT@"
  error_on_missing_key = true
}

exec {
  # EDIT: the app and its arguments. It starts once every env_template has rendered.
  command                   = ["/usr/local/bin/search-api", "--serve"]
  restart_on_secret_changes = "always"   # a new key restarts the app: it reads QDRANT_API_KEY at start only
  restart_stop_signal       = "SIGTERM"  # then SIGKILL after 30 s
}
