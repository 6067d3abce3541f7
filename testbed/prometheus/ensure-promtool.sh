#!/usr/bin/env bash
# Prints the path of a usable `promtool`, installing Debian's `prometheus` package (which ships /usr/bin/promtool)
# with apt-get on first use.
#   1. $PROMTOOL_BIN if set (must be executable)
#   2. a `promtool` on PATH
#   3. apt-get install prometheus (as root, or through sudo without a password)
# Progress goes to stderr; the binary path is the only thing printed on stdout.
set -euo pipefail

log() { printf 'ensure-promtool: %s\n' "$*" >&2; }

if [ -n "${PROMTOOL_BIN:-}" ]; then
  if [ -x "$PROMTOOL_BIN" ]; then echo "$PROMTOOL_BIN"; exit 0; fi
  log "PROMTOOL_BIN=$PROMTOOL_BIN is not executable"; exit 1
fi
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi

command -v apt-get >/dev/null 2>&1 || { log "promtool is missing and apt-get is not available: install Prometheus's promtool"; exit 1; }
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || { log "promtool is missing and installing it needs root"; exit 1; }
  as_root=(sudo -n)
fi
log "installing Debian's prometheus package for promtool (first time only)"
# Wait for another apt-get (e.g. one installing nginx for the tests) instead of failing on its lock.
apt_opts=(-qq -o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get "${apt_opts[@]}" update >/dev/null 2>&1 || log "apt-get update failed; trying the cached package lists"
# policy-rc.d-less containers: the package's service is neither wanted nor started by the tests.
"${as_root[@]}" apt-get "${apt_opts[@]}" install -y --no-install-recommends prometheus >/dev/null \
  || { log "apt-get install prometheus failed"; exit 1; }
command -v promtool >/dev/null 2>&1 || { log "the prometheus package installed no promtool on PATH"; exit 1; }
command -v promtool
