# pipeline: raw -> silver -> gold -> features materializations.
# Every identity manages its own token and leases, nothing else.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }

path "mlsec/data/s3/pipeline"           { capabilities = ["read"] }
path "database/creds/warehouse-writer"  { capabilities = ["read"] }
path "database/creds/audit-writer"      { capabilities = ["read"] }
# The token vault (privacy/tokens.py): a fresh data key per mint, used in memory for that batch
# only and stored wrapped; the index key, unwrapped per batch. It cannot decrypt `token-wrap`,
# so no token turns back into its value here.
path "transit/datakey/plaintext/token-wrap"  { capabilities = ["update"] }
path "transit/decrypt/token-index"           { capabilities = ["update"] }
path "mlsec/data/tokens/index-key"           { capabilities = ["read"] }
