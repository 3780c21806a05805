# operator: what a person's OpenBao login (userpass) holds by itself. It reads and decrypts
# nothing: each `mlsec` command asks for a token of its own, through a token role that grants
# only that command's policies (`auth/token/roles/operator-<command>`), for a short time.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/revoke-self" { capabilities = ["update"] }

path "auth/token/create/operator-issue"                   { capabilities = ["update"] }
path "auth/token/create/operator-reveal"                  { capabilities = ["update"] }
path "auth/token/create/operator-cert-issue"              { capabilities = ["update"] }
path "auth/token/create/operator-rotate-token-keys"       { capabilities = ["update"] }
path "auth/token/create/operator-rotate-s3-keys"          { capabilities = ["update"] }
path "auth/token/create/operator-exclude"                 { capabilities = ["update"] }
path "auth/token/create/operator-revoke-root"             { capabilities = ["update"] }
path "auth/token/create/operator-bootstrap"               { capabilities = ["update"] }
path "auth/token/create/operator-erase"                   { capabilities = ["update"] }
path "auth/token/create/operator-erase-verify"            { capabilities = ["update"] }
path "auth/token/create/operator-receipt-verify"          { capabilities = ["update"] }
path "auth/token/create/operator-subjects"                { capabilities = ["update"] }
