# qdrant-rotator: what the Qdrant key rotator uses, and nothing else.
#
# Written for the KV v2 mount "secret" and the prefix "qdrant" (the rotator's defaults, vault.mount and
# vault.prefix in rotator.yml). setup.sh rewrites "secret/<kind>/qdrant/" on every path line for another mount or
# prefix; to load this file by hand, edit those two path segments.
#
# Everything the rotator keeps lives under secret/qdrant/:
#   deployments/<deployment>/admin, .../read-only, .../keys/<name>   consumer records (the keys)
#   rotator/journal/<deployment>, rotator/fingerprint                the rotator's own records

# Data: new versions with check-and-set (create: first version, update: later ones) and reads. No "patch" on data
# (the rotator never merge-patches a record), no "delete" (it never deletes a latest version), no "list".
path "secret/data/qdrant/*" {
  capabilities = ["create", "read", "update"]
}

# Metadata: read (versions, custom_metadata), create/update, and patch (cas_required and the version labels in
# custom_metadata are merge-patched). Deliberately no "delete": DELETE secret/metadata/... would wipe every version
# and reset check-and-set to 0, which no rotator may do. No "list" either: the rotator never lists.
path "secret/metadata/qdrant/*" {
  capabilities = ["create", "read", "update", "patch"]
}

# Soft delete of retired key versions (POST secret/delete/..., after vault.retention). Only consumer records are
# ever soft-deleted; the versions stay recoverable (no undelete/ or destroy/ access here).
path "secret/delete/qdrant/deployments/*" {
  capabilities = ["update"]
}
