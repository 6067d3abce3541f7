#!/usr/bin/env bash
# Prints the path of an nginx binary, installing Debian's nginx package with apt-get when none is found (quietly;
# running it again changes nothing). The nginx tests run it as a process on 127.0.0.1, never as a service (on a host
# with systemd the package also enables the nginx service on port 80; stop it if unwanted).
#   1. $NGINX_BIN if set (must be executable)
#   2. nginx on PATH or in /usr/sbin
#   3. apt-get install nginx (needs root or sudo)
# Progress goes to stderr; the binary path is the only thing printed on stdout.
set -euo pipefail

log() { printf 'ensure-nginx: %s\n' "$*" >&2; }

if [ -n "${NGINX_BIN:-}" ]; then
  if [ -x "$NGINX_BIN" ]; then echo "$NGINX_BIN"; exit 0; fi
  log "NGINX_BIN=$NGINX_BIN is not executable"; exit 1
fi
find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }
if bin=$(find_nginx); then echo "$bin"; exit 0; fi

command -v apt-get >/dev/null 2>&1 || { log "no nginx and no apt-get to install it"; exit 1; }
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
log "installing Debian's nginx package"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends nginx >/dev/null 2>&1; then
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
bin=$(find_nginx) || { log "apt-get installed nginx but no nginx binary is found"; exit 1; }
echo "$bin"
