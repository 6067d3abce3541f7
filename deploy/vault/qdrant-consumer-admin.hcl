# qdrant-consumer-admin: an app with full access reads its deployment's admin key, and nothing else.
#
# Templated: one policy serves every admin consumer. The deployment comes from the metadata of the token's identity
# entity, which setup.sh sets (qdrant_deployment=<deployment>) on the entity tied to the consumer's AppRole. A token
# without that metadata matches no path here (Vault skips a rule whose template cannot be filled): it fails closed.
#
# Written for the KV v2 mount "secret" and the prefix "qdrant"; setup.sh rewrites "secret/data/qdrant/" for others.
path "secret/data/qdrant/deployments/{{identity.entity.metadata.qdrant_deployment}}/admin" {
  capabilities = ["read"]
}
