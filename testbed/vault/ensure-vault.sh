#!/usr/bin/env bash
# Prints the path of a usable `vault` binary (>= 1.14), building Vault v1.14.0 (MPL-2.0) from the
# Go module proxy on first use and caching it outside the repository, keyed by version.
#   1. $VAULT_BIN if set (must exist and report >= 1.14)
#   2. a `vault` on PATH reporting >= 1.14
#   3. $XDG_CACHE_HOME/qdrant-rotator/vault-1.14.0/vault (built here if missing)
# Progress goes to stderr; the binary path is the only thing printed on stdout.
set -euo pipefail

VERSION=1.14.0
SDK=v0.9.2
API=v1.9.2
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/qdrant-rotator"
OUT="$CACHE_ROOT/vault-$VERSION/vault"

log() { printf 'ensure-vault: %s\n' "$*" >&2; }

version_ok() { # $1 = binary; true when it reports Vault v1.14 or newer
  local v major minor
  v=$("$1" version 2>/dev/null | sed -n 's/^Vault v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -n1)
  [ -n "$v" ] || return 1
  read -r major minor <<<"$v"
  [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 14 ]; }
}

if [ -n "${VAULT_BIN:-}" ]; then
  if [ -x "$VAULT_BIN" ] && version_ok "$VAULT_BIN"; then echo "$VAULT_BIN"; exit 0; fi
  log "VAULT_BIN=$VAULT_BIN is not an executable Vault >= 1.14"; exit 1
fi
if command -v vault >/dev/null 2>&1 && version_ok "$(command -v vault)"; then
  command -v vault; exit 0
fi
if [ -x "$OUT" ] && version_ok "$OUT"; then echo "$OUT"; exit 0; fi

command -v go >/dev/null 2>&1 || { log "go is required to build Vault v$VERSION"; exit 1; }
log "building Vault v$VERSION from the Go module proxy into $OUT (first time only; ~10 min cold on 2 cores)"
mkdir -p "$CACHE_ROOT"
WORK=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

DIR=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/vault@v$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$DIR" ] || { log "go mod download gave no module folder"; exit 1; }
cp -r "$DIR" "$WORK/src"
chmod -R u+w "$WORK/src"
cd "$WORK/src"
for m in api api/auth/approle api/auth/kubernetes api/auth/userpass sdk; do
  go mod edit -dropreplace "github.com/hashicorp/vault/$m"
done
go mod edit -require "github.com/hashicorp/vault/sdk@$SDK" -require "github.com/hashicorp/vault/api@$API"
# Enterprise-only paths that sdk v0.9.2 rejects at start ("defines a CreateOperation but no ExistenceCheck").
sed -i '/"managed-keys\//s/logical\.CreateOperation, //' vault/logical_system_helpers.go
[ "$(grep -c 'managed-keys/.*CreateOperation' vault/logical_system_helpers.go || true)" = 0 ] || { log "patch of managed-keys paths failed"; exit 1; }
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$OUT.tmp" .
mv "$OUT.tmp" "$OUT"
version_ok "$OUT" || { log "built binary does not report Vault v$VERSION"; exit 1; }
log "built $("$OUT" version)"
echo "$OUT"
