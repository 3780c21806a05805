# lifecycle: moves raw partitions past retention to cold and back; the only identity that
# may delete in raw. Its S3 key also rewrites landing and quarantine objects and deletes from
# the token vault (`mlsec erase` borrows it: policies/s3/lifecycle.json). Postgres writes only
# to the audit log.
# Every identity manages its own token and leases, nothing else.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }

path "mlsec/data/s3/lifecycle"      { capabilities = ["read"] }
path "database/creds/audit-writer"  { capabilities = ["read"] }
