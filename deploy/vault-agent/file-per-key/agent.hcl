# Vault Agent, file-per-key variant: renders the consumer's Qdrant credential alone (no newline) into a file with
# mode 0400, and runs a reload command each time the file changes, so the app re-reads it without a restart
# (or restarts, if that is all it can do). The command also runs after the first render at the agent's start.
# Run: vault agent -config=agent.hcl   (../README.md: which variant to pick, and the grace each one needs)
#
# Placeholders: replace every @NAME@ before use (`grep -n '@[A-Z_]*@' agent.hcl` lists what is left):
#   @VAULT_ADDR@    Vault's address, e.g. https://vault.internal:8200
#   @APPROLE_DIR@   the folder holding role_id and secret_id (deploy/vault/setup.sh writes <secret-dir>/<consumer>/)
#   @DEPLOYMENT@    the deployment's name in rotator.yml, e.g. prod
#   @RECORD@        admin, read-only or keys/<name>: the record the consumer's AppRole may read (setup.sh prints it)
#   @OUTPUT_DIR@    the folder the key file (qdrant-api-key) goes to, best a tmpfs such as /run/<app>
#   @APP_SERVICE@   the systemd unit to reload; or replace the whole reload command (see the exec block)
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
  # file (and runs the reload command) only when it changed. The rotator's grace must be at least this interval
  # plus the reload command's time.
  static_secret_render_interval = "30s"
  # Give up (exit non-zero, for systemd or Docker to restart and alert) rather than keep serving a stale file
  # when Vault cannot be reached or a field is missing (with error_on_missing_key below).
  exit_on_retry_failure = true
}

template {
  destination          = "@OUTPUT_DIR@/qdrant-api-key"
  perms                = "0400"  # the agent's user only; run the app as that user, or use 0440 and a group
  backup               = false   # no qdrant-api-key.bak holding the previous key
  error_on_missing_key = true    # a record without api_key stops the agent instead of rendering an empty key
  contents             = "{{ with secret \"secret/data/qdrant/deployments/@DEPLOYMENT@/@RECORD@\" }}{{ .Data.data.api_key }}{{ end }}"

  # Runs after each change of the file; it must exit 0 within the timeout. systemctl needs the agent to run as
  # root (or a polkit rule); alternatives: ["kill", "-HUP", "<pid>"], ["docker", "kill", "--signal=HUP", "<app>"].
  exec {
    command = ["systemctl", "try-reload-or-restart", "@APP_SERVICE@"]
    timeout = "30s"
  }
}
