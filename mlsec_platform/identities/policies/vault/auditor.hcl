# auditor: reads the audit log, anchors the head of the hash chain outside Postgres.
# Every identity manages its own token and leases, nothing else.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }

path "mlsec/data/s3/auditor"         { capabilities = ["read"] }
path "database/creds/audit-reader"   { capabilities = ["read"] }
path "mlsec/data/audit/anchor"       { capabilities = ["create", "update", "read"] }
path "mlsec/metadata/audit/anchor"   { capabilities = ["read"] }
