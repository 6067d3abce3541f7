# qdrant-consumer-key: an app reads one named key of one deployment (deployments/<deployment>/keys/<name> in
# rotator.yml's "keys"), and nothing else. A read-only or collection-scoped named key is a JWT, sent like a key.
#
# Templated: one policy serves every named-key consumer. The deployment and the key name come from the metadata of
# the token's identity entity, which setup.sh sets (qdrant_deployment=<deployment>, qdrant_key=<name>) on the entity
# tied to the consumer's AppRole. If either is missing the rule is skipped: it fails closed.
#
# Written for the KV v2 mount "secret" and the prefix "qdrant"; setup.sh rewrites "secret/data/qdrant/" for others.
path "secret/data/qdrant/deployments/{{identity.entity.metadata.qdrant_deployment}}/keys/{{identity.entity.metadata.qdrant_key}}" {
  capabilities = ["read"]
}
