# orchestrator: the Dagster instance's own Postgres storage, and its S3 keys for the step logs
# (the dagster bucket only, by its S3 policy).
# Every identity manages its own token and leases, nothing else.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }

path "mlsec/data/postgres/dagster"   { capabilities = ["read"] }
path "mlsec/data/s3/orchestrator"     { capabilities = ["read"] }
