# operator-command: what every operator command's token holds beside its own policy: its own
# token, and a short Postgres login that appends the command's audit events (the operator is
# their actor).
path "auth/token/lookup-self"       { capabilities = ["read"] }
path "auth/token/revoke-self"       { capabilities = ["update"] }
path "database/creds/audit-writer"  { capabilities = ["read"] }
path "sys/leases/revoke"            { capabilities = ["update"] }
