# revealer: the Access Broker's reveal path and nothing else. Its token can turn tokenized
# identifiers back into clear values (read the token vault, unwrap its data keys); the broker
# uses it only for requests whose caller holds the `reveal` entitlement and states a reason,
# after a policy decision, and every use is recorded (platform audit log at high severity, and
# OpenBao's own audit device).
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }

path "transit/decrypt/token-wrap"      { capabilities = ["update"] }
path "mlsec/data/s3/revealer"          { capabilities = ["read"] }
path "database/creds/audit-writer"     { capabilities = ["read"] }
