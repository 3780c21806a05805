# gateway: accepts uploads and events; never writes Raw.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }

path "mlsec/data/s3/gateway"          { capabilities = ["read"] }
path "mlsec/data/nats/gateway"        { capabilities = ["read"] }
path "database/creds/audit-writer"    { capabilities = ["read"] }
# Public keys of the token issuer, to verify uploaders' tokens (never the private key).
path "transit/keys/mlsec-issuer"      { capabilities = ["read"] }
# Its TLS server certificate, from the platform CA, for the configured names only.
path "pki/issue/gateway-server"       { capabilities = ["update"] }
