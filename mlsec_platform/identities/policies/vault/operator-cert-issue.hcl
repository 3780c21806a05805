# operator-cert-issue: `mlsec cert issue`. A short-lived client certificate from the platform
# CA, for any subject; client auth only (the `client` role), never a server certificate.
path "pki/issue/client"  { capabilities = ["update"] }
