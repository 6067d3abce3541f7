# qdrant-consumer-read-only: a read-only app reads its deployment's read-only credential, and nothing else. The
# record holds a key, or for a while during a rotation a read JWT (kind "jwt"), sent the same way (api-key header).
#
# Templated: one policy serves every read-only consumer. The deployment comes from the metadata of the token's
# identity entity, which setup.sh sets (qdrant_deployment=<deployment>) on the entity tied to the consumer's
# AppRole. A token without that metadata matches no path here (Vault skips the rule): it fails closed.
#
# Written for the KV v2 mount "secret" and the prefix "qdrant"; setup.sh rewrites "secret/data/qdrant/" for others.
path "secret/data/qdrant/deployments/{{identity.entity.metadata.qdrant_deployment}}/read-only" {
  capabilities = ["read"]
}
