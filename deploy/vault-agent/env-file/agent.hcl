# Vault Agent, env-file variant: renders the consumer's Qdrant credential into an env file, QDRANT_API_KEY plus
# QDRANT_API_KEY_VERSION, QDRANT_HOST and QDRANT_PORT. The app reads it at start (systemd EnvironmentFile=,
# docker run --env-file, `set -a; . qdrant.env`) or re-reads it on its own; nothing restarts the app here.
# Run: vault agent -config=agent.hcl   (../README.md: which variant to pick, and the grace each one needs)
#
# Placeholders: replace every @NAME@ before use (`grep -n '@[A-Z_]*@' agent.hcl` lists what is left):
#   @VAULT_ADDR@    Vault's address, e.g. https://vault.internal:8200
#   @APPROLE_DIR@   the folder holding role_id and secret_id (deploy/vault/setup.sh writes <secret-dir>/<consumer>/)
#   @DEPLOYMENT@    the deployment's name in rotator.yml, e.g. prod
#   @RECORD@        admin, read-only or keys/<name>: the record the consumer's AppRole may read (setup.sh prints it)
#   @OUTPUT_DIR@    the folder qdrant.env goes to, best a tmpfs such as /run/<app>
#   @QDRANT_HOST@   copied into the file as is: the host (or load balancer) the app sends requests to
#   @QDRANT_PORT@   copied into the file as is: 6333 (REST) or 6334 (gRPC)
# The KV v2 mount "secret" and the rotator's prefix "qdrant" are written out (secret/data/qdrant/...); change them
# if rotator.yml sets another vault.mount or vault.prefix.

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
  # KV v2 records carry no lease, so the agent re-reads the record every 0.85-0.95 x this interval and rewrites the
  # file only when it changed. A new key reaches the file at most one interval after the rotator publishes it;
  # the rotator's grace must be at least this interval plus the time the app takes to pick the file up.
  static_secret_render_interval = "30s"
  # Give up (exit non-zero, for systemd or Docker to restart and alert) rather than keep serving a stale file
  # when Vault cannot be reached or a field is missing (with error_on_missing_key below).
  exit_on_retry_failure = true
}

template {
  destination          = "@OUTPUT_DIR@/qdrant.env"
  perms                = "0400"  # the agent's user only; run the app as that user, or use 0440 and a group
  backup               = false   # no qdrant.env.bak holding the previous key
  error_on_missing_key = true    # a record without api_key stops the agent instead of rendering an empty key
  contents             = <<EOT
{{ with secret "secret/data/qdrant/deployments/@DEPLOYMENT@/@RECORD@" -}}
QDRANT_API_KEY={{ .Data.data.api_key }}
QDRANT_API_KEY_VERSION={{ .Data.metadata.version }}
{{ end -}}
QDRANT_HOST=@QDRANT_HOST@
QDRANT_PORT=@QDRANT_PORT@
EOT
}
