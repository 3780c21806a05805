# broker: read-only access to curated zones; holds no write credential to any zone (its only
# writes are appending its own audit events and the shared limit counters). It cannot decrypt tokens: reveal goes through the
# separate `revealer` identity.
# Every identity manages its own token and leases, nothing else.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }

path "mlsec/data/s3/broker"             { capabilities = ["read"] }
path "database/creds/warehouse-reader"  { capabilities = ["read"] }
path "database/creds/audit-writer"      { capabilities = ["read"] }
# Lineage: a read-only login to the Dagster instance's tables (never its owner login).
path "database/creds/lineage-reader"    { capabilities = ["read"] }
# Rates, quotas and in-flight slots shared by all broker replicas (schema `limits` only).
path "database/creds/limits-keeper"     { capabilities = ["read"] }
# Verifying identity tokens: the issuer's public keys only (the JWKS), never signing.
path "transit/keys/mlsec-issuer"        { capabilities = ["read"] }
# Lineage receipts: certifying its own in-memory receipt key, and the key's public halves.
path "transit/sign/broker-receipts"     { capabilities = ["update"] }
path "transit/keys/broker-receipts"     { capabilities = ["read"] }
# Its own keys: keyed-hash masking and cursor signing.
path "mlsec/data/broker/keys"           { capabilities = ["read"] }
# Its TLS server certificate, from the platform CA, for the configured names only.
path "pki/issue/broker-server"          { capabilities = ["update"] }
