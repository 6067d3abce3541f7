#!/usr/bin/env bash
# Prints the folder holding a single-node Kubernetes v1.34.4 (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl), building it from the Go module proxy on first use and caching it outside the
# repository, keyed by version, beside the Vault build. Progress goes to stderr; the folder is the only thing on stdout.
#   1. $K8S_BIN_DIR if set (must hold every binary)
#   2. $XDG_CACHE_HOME/qdrant-rotator/kubernetes-1.34.4 (built here if missing)
# Why 1.34: kubelet >= 1.35 refuses cgroup v1 unless told otherwise; 1.34 runs on it with failCgroupV1: false.
set -euo pipefail

VERSION=1.34.4
STAGING=0.34.4
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/qdrant-rotator"
OUT="$CACHE_ROOT/kubernetes-$VERSION"
BINS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

log() { printf 'ensure-k8s: %s\n' "$*" >&2; }

complete() { # $1 = folder; true when every binary is there and executable
  local b
  for b in "${BINS[@]}"; do [ -x "$1/$b" ] || return 1; done
}

if [ -n "${K8S_BIN_DIR:-}" ]; then
  if complete "$K8S_BIN_DIR"; then echo "$K8S_BIN_DIR"; exit 0; fi
  log "K8S_BIN_DIR=$K8S_BIN_DIR does not hold all of: ${BINS[*]}"; exit 1
fi
if complete "$OUT"; then echo "$OUT"; exit 0; fi

command -v go >/dev/null 2>&1 || { log "go is required to build Kubernetes v$VERSION"; exit 1; }
mkdir -p "$CACHE_ROOT" "$OUT"
# One build at a time: a second caller waits for the first instead of building beside it.
exec 9>"$CACHE_ROOT/kubernetes-$VERSION.lock"
flock 9
if complete "$OUT"; then echo "$OUT"; exit 0; fi
log "building Kubernetes v$VERSION from the Go module proxy into $OUT (first time only; about 15 min cold on 2 cores)"
WORK=$(mktemp -d "$CACHE_ROOT/k8s-build.XXXXXX")
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
cd "$WORK"

# A builder module of our own: kubernetes' go.mod replaces its 31 staging modules with folders that the module zip
# does not carry, so each is pinned to its published v0.X release instead.
{
  echo "module rotator.local/k8sbuild"
  echo
  echo "go 1.24.0"
  echo
  echo "require k8s.io/kubernetes v$VERSION"
  echo
  echo "replace ("
  for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap \
    code-generator component-base component-helpers controller-manager cri-api cri-client csi-translation-lib \
    dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy \
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin \
    sample-controller; do
    echo "	k8s.io/$m => k8s.io/$m v$STAGING"
  done
  echo ")"
} >go.mod
mkdir -p etcd tools
cat >etcd/main.go <<'GO'
// Command etcd is etcd's own main, built at the version kubernetes v1.34 requires.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
cat >tools/tools.go <<'GO'
//go:build tools

// Package tools names the kubernetes commands this module builds, so that tidy keeps their dependencies.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
start=$(date +%s)
GOFLAGS=-mod=mod go mod tidy >&2
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# The version the binaries report (a build from the module zip has no git data to stamp it with).
VERSION_FLAGS="-X k8s.io/component-base/version.gitVersion=v$VERSION -X k8s.io/component-base/version.gitMajor=${VERSION%%.*}"
VERSION_FLAGS+=" -X k8s.io/component-base/version.gitMinor=$(echo "$VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
VERSION_FLAGS+=" -X k8s.io/client-go/pkg/version.gitVersion=v$VERSION"
build() { # $1 = output name, $2 = package
  local t=$(date +%s)
  nice go build -trimpath -ldflags "-s -w $VERSION_FLAGS" -o "$OUT/$1.tmp" "$2"
  mv "$OUT/$1.tmp" "$OUT/$1"
  log "built $1 in $(($(date +%s) - t)) s"
}
build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubelet k8s.io/kubernetes/cmd/kubelet
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kubectl k8s.io/kubernetes/cmd/kubectl
"$OUT/kube-apiserver" --version >&2
log "built Kubernetes v$VERSION in $(($(date +%s) - start)) s"
echo "$OUT"
