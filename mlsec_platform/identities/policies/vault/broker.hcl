# broker: read-only access to curated zones; holds no write credential anywhere.
# Every identity manages its own token and leases, nothing else.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }

path "mlsec/data/s3/broker"             { capabilities = ["read"] }
path "database/creds/warehouse-reader"  { capabilities = ["read"] }
path "database/creds/audit-writer"      { capabilities = ["read"] }
