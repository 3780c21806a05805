# lifecycle: moves raw partitions past retention to cold and back; the only identity that
# may delete in raw (`mlsec erase` borrows its S3 key there and in cold). Nothing else: the
# token vault, landing and quarantine are the eraser's (policies/s3/eraser.json), whose key
# no workload reads. Postgres writes only to the audit log.
# Every identity manages its own token and leases, nothing else.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }

path "mlsec/data/s3/lifecycle"      { capabilities = ["read"] }
path "database/creds/audit-writer"  { capabilities = ["read"] }
