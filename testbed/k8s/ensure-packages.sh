#!/usr/bin/env bash
# Installs the Debian packages the Kubernetes test cluster runs on, when they are missing (quietly; running it again
# changes nothing): containerd and runc (a containerd of the cluster's own, not Docker's) and
# containernetworking-plugins (the bridge, host-local, portmap and loopback CNI plugins in /usr/lib/cni).
set -euo pipefail

log() { printf 'ensure-k8s-packages: %s\n' "$*" >&2; }

missing=()
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v ctr >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null 2>&1 || { log "missing ${missing[*]} and no apt-get to install them"; exit 1; }
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
log "installing Debian's ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1; then
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
[ -x /usr/lib/cni/bridge ] && command -v containerd >/dev/null || { log "apt-get ran but the packages are still missing"; exit 1; }
