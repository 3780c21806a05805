# reveal: turning tokens back into clear values (the operator's `mlsec reveal`). Granted to no
# workload; every use is recorded by the OpenBao audit device and the platform audit log. It
# reads the token vault with the revealer's S3 keys (read-only) and unwraps its data keys.
path "transit/decrypt/token-wrap"   { capabilities = ["update"] }
path "mlsec/data/s3/revealer"       { capabilities = ["read"] }
