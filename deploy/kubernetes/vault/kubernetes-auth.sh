#!/usr/bin/env bash
# Sets up Vault's Kubernetes auth method for the Qdrant key rotator running in a cluster (../rotator/). Idempotent: run
# it again at any time; what exists is kept or brought in line with the flags, nothing is deleted.
#
# It uses the vault CLI with VAULT_ADDR and VAULT_TOKEN (or the token helper) from the environment; the token needs to
# manage auth methods and ACL policies (root or an admin policy).
#
#   1. the KV v2 mount (default secret/) must exist (deploy/vault/setup.sh or `vault secrets enable -path=secret kv-v2`)
#   2. the policy qdrant-rotator, from deploy/vault/qdrant-rotator.hcl rewritten for --mount and --prefix
#   3. the Kubernetes auth method (default kubernetes/): enabled if missing
#   4. its config: the API server's address and CA, and how Vault checks a login's JWT (TokenReview):
#        --reviewer-jwt-file FILE  with that token (Vault outside the cluster; token-reviewer.yaml makes one)
#        --client-jwt              with the JWT of the login itself (disable_local_ca_jwt); that JWT must then be
#                                  accepted by the API server, which a token of audience vault is not: see README.md
#        neither                   with the token of Vault's own pod (Vault inside the cluster)
#   5. the role qdrant-rotator: service account qdrant-rotator in namespace qdrant-rotator, audience vault, policy
#      qdrant-rotator, tokens of 1h
# Nothing secret is printed: the reviewer JWT goes from its file to Vault (@FILE), never through the command line.
#
# Example (Vault outside the cluster):
#   ./kubernetes-auth.sh --kubernetes-host https://10.0.0.1:6443 --kubernetes-ca-cert k8s-ca.crt \
#     --reviewer-jwt-file reviewer.jwt
set -euo pipefail

usage() {
	cat <<'EOF_USAGE'
Usage: kubernetes-auth.sh [options]

  --kubernetes-host URL     the API server as Vault reaches it (default https://kubernetes.default.svc)
  --kubernetes-ca-cert FILE PEM of the CA of the API server's certificate (default: Vault's pod's, in the cluster)
  --reviewer-jwt-file FILE  a token allowed to create TokenReviews (system:auth-delegator), for Vault to check logins
  --client-jwt              no reviewer token: Vault checks each login's JWT with that JWT itself
  --auth-path PATH          the Kubernetes auth mount (default kubernetes; env QDRANT_K8S_AUTH_PATH)
  --role NAME               the Vault role (default qdrant-rotator)
  --namespace NS            the rotator's namespace (default qdrant-rotator)
  --service-account NAME    the rotator's service account (default qdrant-rotator)
  --audience AUD            the audience its JWT must carry (default vault, as deployment.yaml projects it)
  --mount PATH              KV v2 mount of the rotator's records (default secret; env QDRANT_KV_MOUNT)
  --prefix PATH             the rotator's prefix under the mount (default qdrant; env QDRANT_KV_PREFIX)
  --token-ttl DUR           TTL of the role's tokens (default 1h)
  --token-max-ttl DUR       their maximum TTL (default 4h)
  -h, --help                this help

Exit status: 0 done, 1 Vault refused or is not as expected (nothing after that step was changed), 2 bad arguments.
EOF_USAGE
}

die() { # a bad command line: exit 2
	printf 'kubernetes-auth.sh: %s\n' "$*" >&2
	exit 2
}

fail() { # Vault is not as expected: exit 1
	printf 'kubernetes-auth.sh: %s\n' "$*" >&2
	exit 1
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POLICY_FILE="$HERE/../../vault/qdrant-rotator.hcl"
K8S_HOST=https://kubernetes.default.svc
K8S_CA_CERT=""
REVIEWER_JWT_FILE=""
CLIENT_JWT=false
AUTH_PATH=${QDRANT_K8S_AUTH_PATH:-kubernetes}
ROLE=qdrant-rotator
NAMESPACE=qdrant-rotator
SERVICE_ACCOUNT=qdrant-rotator
AUDIENCE=vault
MOUNT=${QDRANT_KV_MOUNT:-secret}
PREFIX=${QDRANT_KV_PREFIX:-qdrant}
TOKEN_TTL=1h
TOKEN_MAX_TTL=4h
POLICY=qdrant-rotator

PATH_RE='^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$'
K8S_NAME_RE='^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' # namespaces and service accounts (DNS labels)
ROLE_RE='^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'

while [ $# -gt 0 ]; do
	case $1 in
	--kubernetes-host | --kubernetes-ca-cert | --reviewer-jwt-file | --auth-path | --role | --namespace | \
		--service-account | --audience | --mount | --prefix | --token-ttl | --token-max-ttl)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--kubernetes-host) K8S_HOST=$2 ;;
		--kubernetes-ca-cert) K8S_CA_CERT=$2 ;;
		--reviewer-jwt-file) REVIEWER_JWT_FILE=$2 ;;
		--auth-path) AUTH_PATH=$2 ;;
		--role) ROLE=$2 ;;
		--namespace) NAMESPACE=$2 ;;
		--service-account) SERVICE_ACCOUNT=$2 ;;
		--audience) AUDIENCE=$2 ;;
		--mount) MOUNT=$2 ;;
		--prefix) PREFIX=$2 ;;
		--token-ttl) TOKEN_TTL=$2 ;;
		--token-max-ttl) TOKEN_MAX_TTL=$2 ;;
		esac
		shift 2
		;;
	--client-jwt)
		CLIENT_JWT=true
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		die "unknown argument $1"
		;;
	esac
done

AUTH_PATH=${AUTH_PATH#/}
AUTH_PATH=${AUTH_PATH%/}
MOUNT=${MOUNT#/}
MOUNT=${MOUNT%/}
PREFIX=${PREFIX#/}
PREFIX=${PREFIX%/}
[[ $K8S_HOST =~ ^https?://[^/[:space:]]+/?$ ]] || die "--kubernetes-host $K8S_HOST: want https://HOST[:PORT]"
[[ $AUTH_PATH =~ $PATH_RE ]] || die "--auth-path $AUTH_PATH: not a Vault path"
[[ $MOUNT =~ $PATH_RE ]] || die "--mount $MOUNT: not a Vault path"
[ -n "$PREFIX" ] || die "--prefix must not be empty: the rotator's policy covers everything under it"
[[ $PREFIX =~ $PATH_RE ]] || die "--prefix $PREFIX: not a Vault path"
[[ $ROLE =~ $ROLE_RE ]] || die "--role $ROLE: want [A-Za-z0-9][A-Za-z0-9_.-]*"
[[ $NAMESPACE =~ $K8S_NAME_RE ]] || die "--namespace $NAMESPACE: want a Kubernetes namespace name"
[[ $SERVICE_ACCOUNT =~ $K8S_NAME_RE ]] || die "--service-account $SERVICE_ACCOUNT: want a Kubernetes service account name"
[[ $AUDIENCE =~ ^[^,[:space:]]+$ ]] || die "--audience $AUDIENCE: want one audience, without spaces or commas"
[[ $TOKEN_TTL =~ ^[0-9]+[smh]?$ ]] || die "--token-ttl $TOKEN_TTL: want a duration such as 30m or 1h"
[[ $TOKEN_MAX_TTL =~ ^[0-9]+[smh]?$ ]] || die "--token-max-ttl $TOKEN_MAX_TTL: want a duration such as 4h"
if [ -n "$REVIEWER_JWT_FILE" ] && [ "$CLIENT_JWT" = true ]; then
	die "--reviewer-jwt-file and --client-jwt exclude each other"
fi
if [ -n "$K8S_CA_CERT" ]; then
	[ -r "$K8S_CA_CERT" ] || die "--kubernetes-ca-cert $K8S_CA_CERT: cannot read it"
	grep -q -- '-----BEGIN CERTIFICATE-----' "$K8S_CA_CERT" || die "--kubernetes-ca-cert $K8S_CA_CERT: not a PEM certificate"
fi
if [ -n "$REVIEWER_JWT_FILE" ]; then
	[ -r "$REVIEWER_JWT_FILE" ] && [ -s "$REVIEWER_JWT_FILE" ] || die "--reviewer-jwt-file $REVIEWER_JWT_FILE: cannot read it, or it is empty"
fi
[ -r "$POLICY_FILE" ] || fail "missing $POLICY_FILE (the rotator's policy)"

command -v vault >/dev/null 2>&1 || fail "the vault CLI is not on PATH"
[ -n "${VAULT_ADDR:-}" ] || fail "VAULT_ADDR is not set"
# A wrapping TTL would wrap every answer; a JSON default would change -field output.
unset VAULT_WRAP_TTL VAULT_FORMAT
vault token lookup >/dev/null || fail "cannot use the Vault token (VAULT_TOKEN or the token helper) at $VAULT_ADDR"

errfile=$(mktemp)
trap 'rm -f "$errfile"' EXIT

# --- 1. KV v2 mount ---------------------------------------------------------------------------------------------
if mtype=$(vault read -field=type "sys/mounts/$MOUNT" 2>"$errfile"); then
	mopts=$(vault read -field=options "sys/mounts/$MOUNT")
	if [ "$mtype" != kv ] || [[ $mopts != *version:2* ]]; then
		fail "mount $MOUNT/ exists but is not KV v2 (type $mtype, options $mopts); choose --mount"
	fi
	echo "kv mount $MOUNT/: KV v2, exists"
elif grep -q 'No secret engine mount at' "$errfile"; then
	fail "no mount $MOUNT/: run deploy/vault/setup.sh, or vault secrets enable -path=$MOUNT kv-v2"
else
	cat "$errfile" >&2
	fail "cannot read mount $MOUNT/"
fi

# --- 2. the rotator's policy ------------------------------------------------------------------------------------
# Written for mount "secret" and prefix "qdrant", as setup.sh writes it: rewrite the start of every path.
sed -E "s#^path \"secret/(data|metadata|delete)/qdrant/#path \"$MOUNT/\\1/$PREFIX/#" "$POLICY_FILE" | vault policy write "$POLICY" - >/dev/null
echo "policy $POLICY: written"

# --- 3. Kubernetes auth method ----------------------------------------------------------------------------------
if atype=$(vault read -field=type "sys/auth/$AUTH_PATH" 2>"$errfile"); then
	[ "$atype" = kubernetes ] || fail "auth method $AUTH_PATH/ exists but is $atype, not kubernetes; choose --auth-path"
	echo "auth method $AUTH_PATH/: kubernetes, exists"
elif grep -q 'No auth engine at' "$errfile"; then
	vault auth enable -path="$AUTH_PATH" -description="qdrant-rotator in Kubernetes" kubernetes >/dev/null
	echo "auth method $AUTH_PATH/: kubernetes, enabled"
else
	cat "$errfile" >&2
	fail "cannot read auth method $AUTH_PATH/"
fi

# --- 4. its config ----------------------------------------------------------------------------------------------
config=(kubernetes_host="$K8S_HOST")
if [ -n "$K8S_CA_CERT" ]; then
	config+=(kubernetes_ca_cert=@"$K8S_CA_CERT")
fi
if [ -n "$REVIEWER_JWT_FILE" ]; then
	config+=(token_reviewer_jwt=@"$REVIEWER_JWT_FILE" disable_local_ca_jwt=true)
	review="the reviewer token from $REVIEWER_JWT_FILE"
elif [ "$CLIENT_JWT" = true ]; then
	config+=(disable_local_ca_jwt=true)
	review="each login's own JWT"
else
	config+=(disable_local_ca_jwt=false)
	review="the token of Vault's own pod"
fi
vault write "auth/$AUTH_PATH/config" "${config[@]}" >/dev/null
echo "auth method $AUTH_PATH/: config written (API server $K8S_HOST; logins checked with $review)"

# --- 5. the rotator's role --------------------------------------------------------------------------------------
vault write "auth/$AUTH_PATH/role/$ROLE" \
	bound_service_account_names="$SERVICE_ACCOUNT" bound_service_account_namespaces="$NAMESPACE" \
	audience="$AUDIENCE" token_policies="$POLICY" token_ttl="$TOKEN_TTL" token_max_ttl="$TOKEN_MAX_TTL" >/dev/null
echo "role $ROLE: service account $NAMESPACE/$SERVICE_ACCOUNT, audience $AUDIENCE, policy $POLICY, tokens ${TOKEN_TTL} (max ${TOKEN_MAX_TTL})"
