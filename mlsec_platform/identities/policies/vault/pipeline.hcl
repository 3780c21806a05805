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
# Tokenization only: encrypting is allowed, decrypting (reveal) is a separate policy.
path "transit/encrypt/tokenization"     { capabilities = ["update"] }
