#!/usr/bin/env bash
# Sets Vault up for the Qdrant key rotator and the apps that read its keys. Idempotent: run it again, with the same
# or more consumers, at any time; what exists is kept or brought in line, nothing is deleted.
#
# It uses the vault CLI with VAULT_ADDR and VAULT_TOKEN (or the token helper) from the environment; the token needs
# to manage mounts, auth methods, ACL policies, AppRole roles and identity entities (root or an admin policy).
#
#   1. the KV v2 mount (default secret/): enabled if missing; an existing mount must already be KV v2
#   2. the policies qdrant-rotator, qdrant-consumer-admin, qdrant-consumer-read-only, qdrant-consumer-key (from the
#      .hcl files next to this script, rewritten for --mount and --prefix)
#   3. the AppRole auth method (default approle/): enabled if missing
#   4. the AppRole qdrant-rotator (policy qdrant-rotator)
#   5. per consumer NAME: the AppRole qdrant-consumer-NAME (policy qdrant-consumer-KIND) and the identity entity
#      qdrant-consumer-NAME, tied to the role's role_id, whose metadata (qdrant_deployment, qdrant_key) fills the
#      templated consumer policy: each consumer reads exactly one path
#   6. writes DIR/<role>/role_id and DIR/<role>/secret_id (folder 0700, files 0600), where <role> is qdrant-rotator
#      or the consumer NAME; prints role ids, never a secret id. A secret id file that still logs in is kept;
#      --rotate-secret-ids mints new ones and destroys the old ones.
#
# Example:
#   ./setup.sh --secret-dir /etc/qdrant-approle --deployment prod \
#     --consumer search-api:read-only --consumer ingest:admin --consumer products:key=products
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: setup.sh --secret-dir DIR [--deployment NAME] [--consumer NAME:KIND[=KEY]]... [options]

  --secret-dir DIR        where role_id and secret_id files go, one folder per role (env QDRANT_SECRET_DIR)
  --deployment NAME       the deployment the following --consumer flags read (env QDRANT_DEPLOYMENT);
                          may be given again to switch deployments
  --consumer SPEC         NAME:admin | NAME:read-only | NAME:key=KEY (the named key KEY); repeatable.
                          env QDRANT_CONSUMERS: specs separated by spaces, for QDRANT_DEPLOYMENT
  --mount PATH            KV v2 mount (default secret; env QDRANT_KV_MOUNT)
  --prefix PATH           the rotator's prefix under the mount (default qdrant; env QDRANT_KV_PREFIX)
  --approle-path PATH     AppRole auth mount (default approle; env QDRANT_APPROLE_PATH)
  --token-ttl DUR         TTL of the tokens the roles issue (default 1h)
  --token-max-ttl DUR     their maximum TTL (default 4h)
  --rotate-secret-ids     mint new secret ids even where the files hold valid ones (the old ones are destroyed)
  -h, --help              this help

Exit status: 0 done, 1 Vault refused or is not as expected (nothing after that step was changed), 2 bad arguments.
EOF
}

die() { # a bad command line: exit 2
	printf 'setup.sh: %s\n' "$*" >&2
	exit 2
}

fail() { # Vault is not as expected: exit 1
	printf 'setup.sh: %s\n' "$*" >&2
	exit 1
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MOUNT=${QDRANT_KV_MOUNT:-secret}
PREFIX=${QDRANT_KV_PREFIX:-qdrant}
APPROLE_PATH=${QDRANT_APPROLE_PATH:-approle}
SECRET_DIR=${QDRANT_SECRET_DIR:-}
DEPLOYMENT=${QDRANT_DEPLOYMENT:-}
TOKEN_TTL=1h
TOKEN_MAX_TTL=4h
ROTATE_SECRET_IDS=false
ROTATOR_ROLE=qdrant-rotator
CONSUMERS=() # "deployment|name|kind|key"

NAME_RE='^[a-z0-9][a-z0-9_-]{0,62}$'        # deployments and named keys, as rotator.yml allows them
CONSUMER_RE='^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$' # consumer (AppRole) names
PATH_RE='^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$'

add_consumer() { # $1 = spec; uses the current DEPLOYMENT
	local spec=$1 name kind key=""
	[ -n "$DEPLOYMENT" ] || die "--consumer $spec: give --deployment (or QDRANT_DEPLOYMENT) first"
	[[ $DEPLOYMENT =~ $NAME_RE ]] || die "--deployment $DEPLOYMENT: want [a-z0-9][a-z0-9_-]*, at most 63 characters"
	[[ $spec == *:* ]] || die "--consumer $spec: want NAME:admin, NAME:read-only or NAME:key=KEY"
	name=${spec%%:*}
	kind=${spec#*:}
	if [[ $kind == key=* ]]; then
		key=${kind#key=}
		kind=key
		[[ $key =~ $NAME_RE ]] || die "--consumer $spec: key name $key: want [a-z0-9][a-z0-9_-]*, at most 63 characters"
	fi
	case $kind in
	admin | read-only | key) ;;
	*) die "--consumer $spec: kind $kind: want admin, read-only or key=KEY" ;;
	esac
	[[ $name =~ $CONSUMER_RE ]] || die "--consumer $spec: name $name: want [A-Za-z0-9][A-Za-z0-9_-]*, at most 48 characters"
	[ "$name" != "$ROTATOR_ROLE" ] || die "--consumer $spec: the name $ROTATOR_ROLE is the rotator's"
	local c
	for c in ${CONSUMERS[@]+"${CONSUMERS[@]}"}; do
		IFS='|' read -r _ cname _ _ <<<"$c"
		[ "$cname" != "$name" ] || die "--consumer $spec: consumer $name is given twice"
	done
	CONSUMERS+=("$DEPLOYMENT|$name|$kind|$key")
}

if [ -n "${QDRANT_CONSUMERS:-}" ]; then
	read -r -a env_specs <<<"$QDRANT_CONSUMERS"
	for s in ${env_specs[@]+"${env_specs[@]}"}; do add_consumer "$s"; done
fi

while [ $# -gt 0 ]; do
	case $1 in
	--secret-dir | --deployment | --consumer | --mount | --prefix | --approle-path | --token-ttl | --token-max-ttl)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--secret-dir) SECRET_DIR=$2 ;;
		--deployment) DEPLOYMENT=$2 ;;
		--consumer) add_consumer "$2" ;;
		--mount) MOUNT=$2 ;;
		--prefix) PREFIX=$2 ;;
		--approle-path) APPROLE_PATH=$2 ;;
		--token-ttl) TOKEN_TTL=$2 ;;
		--token-max-ttl) TOKEN_MAX_TTL=$2 ;;
		esac
		shift 2
		;;
	--rotate-secret-ids)
		ROTATE_SECRET_IDS=true
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

MOUNT=${MOUNT#/}
MOUNT=${MOUNT%/}
PREFIX=${PREFIX#/}
PREFIX=${PREFIX%/}
APPROLE_PATH=${APPROLE_PATH#/}
APPROLE_PATH=${APPROLE_PATH%/}
[ -n "$SECRET_DIR" ] || die "--secret-dir (or QDRANT_SECRET_DIR) is required: the secret ids are written there, never printed"
[[ $MOUNT =~ $PATH_RE ]] || die "--mount $MOUNT: not a Vault path"
[ -n "$PREFIX" ] || die "--prefix must not be empty: the rotator's policy covers everything under it"
[[ $PREFIX =~ $PATH_RE ]] || die "--prefix $PREFIX: not a Vault path"
[[ $APPROLE_PATH =~ $PATH_RE ]] || die "--approle-path $APPROLE_PATH: not a Vault path"
[[ $TOKEN_TTL =~ ^[0-9]+[smh]?$ ]] || die "--token-ttl $TOKEN_TTL: want a duration such as 30m or 1h"
[[ $TOKEN_MAX_TTL =~ ^[0-9]+[smh]?$ ]] || die "--token-max-ttl $TOKEN_MAX_TTL: want a duration such as 4h"

command -v vault >/dev/null 2>&1 || fail "the vault CLI is not on PATH"
[ -n "${VAULT_ADDR:-}" ] || fail "VAULT_ADDR is not set"
# A wrapping TTL would wrap every answer, the secret ids included; a JSON default would change -field output.
unset VAULT_WRAP_TTL VAULT_FORMAT
vault token lookup >/dev/null || fail "cannot use the Vault token (VAULT_TOKEN or the token helper) at $VAULT_ADDR"

errfile=$(mktemp)
tmpfile=""
cleanup() {
	rm -f "$errfile"
	if [ -n "$tmpfile" ]; then rm -f "$tmpfile"; fi
}
trap cleanup EXIT

# --- 1. KV v2 mount ---------------------------------------------------------------------------------------------
if mtype=$(vault read -field=type "sys/mounts/$MOUNT" 2>"$errfile"); then
	mopts=$(vault read -field=options "sys/mounts/$MOUNT")
	if [ "$mtype" != kv ] || [[ $mopts != *version:2* ]]; then
		fail "mount $MOUNT/ exists but is not KV v2 (type $mtype, options $mopts); upgrade it (vault kv enable-versioning $MOUNT/) or choose --mount"
	fi
	echo "kv mount $MOUNT/: KV v2, exists"
elif grep -q 'No secret engine mount at' "$errfile"; then
	vault secrets enable -path="$MOUNT" -description="Qdrant API keys (qdrant-rotator)" kv-v2 >/dev/null
	echo "kv mount $MOUNT/: KV v2, enabled"
else
	cat "$errfile" >&2
	fail "cannot read mount $MOUNT/"
fi

# --- 2. policies ------------------------------------------------------------------------------------------------
# The .hcl files are written for mount "secret" and prefix "qdrant": rewrite the start of every path.
write_policy() { # $1 = policy name (= file name without .hcl)
	local file="$HERE/$1.hcl"
	[ -r "$file" ] || fail "missing $file"
	sed -E "s#^path \"secret/(data|metadata|delete)/qdrant/#path \"$MOUNT/\\1/$PREFIX/#" "$file" | vault policy write "$1" - >/dev/null
	echo "policy $1: written"
}
for p in qdrant-rotator qdrant-consumer-admin qdrant-consumer-read-only qdrant-consumer-key; do
	write_policy "$p"
done

# --- 3. AppRole auth method -------------------------------------------------------------------------------------
if atype=$(vault read -field=type "sys/auth/$APPROLE_PATH" 2>"$errfile"); then
	[ "$atype" = approle ] || fail "auth method $APPROLE_PATH/ exists but is $atype, not approle; choose --approle-path"
	echo "auth method $APPROLE_PATH/: approle, exists"
elif grep -q 'No auth engine at' "$errfile"; then
	vault auth enable -path="$APPROLE_PATH" -description="qdrant-rotator and its consumers" approle >/dev/null
	echo "auth method $APPROLE_PATH/: approle, enabled"
else
	cat "$errfile" >&2
	fail "cannot read auth method $APPROLE_PATH/"
fi
ACCESSOR=$(vault read -field=accessor "sys/auth/$APPROLE_PATH")

# --- 4-6. roles, entities, credential files ---------------------------------------------------------------------
umask 077
mkdir -p "$SECRET_DIR"
chmod 0700 "$SECRET_DIR"

# secret_id_valid FILE ROLE: the file holds a secret id the role still accepts. The secret id goes to Vault from
# the file (@FILE), never through the command line, and the answer (metadata only) is not printed.
secret_id_valid() {
	[ -s "$1" ] || return 1
	local out
	out=$(vault write -format=json "auth/$APPROLE_PATH/role/$2/secret-id/lookup" secret_id=@"$1" 2>/dev/null) || return 1
	[ -n "$out" ]
}

# credentials ROLE DIRNAME: writes DIR/DIRNAME/role_id and, unless a valid one is there, DIR/DIRNAME/secret_id.
credentials() {
	local role=$1 dir="$SECRET_DIR/$2" role_id state
	mkdir -p "$dir"
	chmod 0700 "$dir"
	role_id=$(vault read -field=role_id "auth/$APPROLE_PATH/role/$role/role-id")
	printf '%s\n' "$role_id" >"$dir/role_id.tmp"
	chmod 0600 "$dir/role_id.tmp"
	mv -f "$dir/role_id.tmp" "$dir/role_id"
	if [ "$ROTATE_SECRET_IDS" = false ] && secret_id_valid "$dir/secret_id" "$role"; then
		state="kept"
	else
		tmpfile=$(mktemp "$dir/.secret_id.XXXXXX") # 0600
		vault write -f -field=secret_id "auth/$APPROLE_PATH/role/$role/secret-id" >"$tmpfile"
		[ -s "$tmpfile" ] || fail "role $role: Vault returned no secret id"
		if secret_id_valid "$dir/secret_id" "$role"; then
			vault write "auth/$APPROLE_PATH/role/$role/secret-id/destroy" secret_id=@"$dir/secret_id" >/dev/null
			state="new (the previous one is destroyed)"
		else
			state="new"
		fi
		mv -f "$tmpfile" "$dir/secret_id"
		tmpfile=""
	fi
	echo "role $role: role_id $role_id; secret_id in $dir/secret_id ($state)"
	ROLE_ID=$role_id
}

vault write "auth/$APPROLE_PATH/role/$ROTATOR_ROLE" \
	token_policies=qdrant-rotator token_ttl="$TOKEN_TTL" token_max_ttl="$TOKEN_MAX_TTL" \
	secret_id_ttl=0 secret_id_num_uses=0 >/dev/null
credentials "$ROTATOR_ROLE" "$ROTATOR_ROLE"

for c in ${CONSUMERS[@]+"${CONSUMERS[@]}"}; do
	IFS='|' read -r dep name kind key <<<"$c"
	role="qdrant-consumer-$name"
	meta=(metadata="qdrant_deployment=$dep")
	record="deployments/$dep/$kind"
	if [ "$kind" = key ]; then
		meta+=(metadata="qdrant_key=$key")
		record="deployments/$dep/keys/$key"
	fi
	vault write "auth/$APPROLE_PATH/role/$role" \
		token_policies="qdrant-consumer-$kind" token_ttl="$TOKEN_TTL" token_max_ttl="$TOKEN_MAX_TTL" \
		secret_id_ttl=0 secret_id_num_uses=0 >/dev/null
	# The entity's metadata replaces what it had, so a consumer moved to another deployment or kind loses its old
	# path at once (tokens it holds included: templated policies are evaluated at each request).
	vault write "identity/entity/name/$role" "${meta[@]}" >/dev/null
	entity_id=$(vault read -field=id "identity/entity/name/$role")
	credentials "$role" "$name"
	# The AppRole alias name is the role_id; writing the alias again (or over an entity Vault made at an earlier
	# login) ties it to this entity.
	vault write identity/entity-alias name="$ROLE_ID" canonical_id="$entity_id" mount_accessor="$ACCESSOR" >/dev/null
	echo "consumer $name: reads $MOUNT/data/$PREFIX/$record (policy qdrant-consumer-$kind, entity $role)"
done
