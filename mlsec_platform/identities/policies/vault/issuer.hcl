# issuer: signs identity tokens with a key that never leaves OpenBao. Held by operators
# (`mlsec token issue`), not by workloads.
path "transit/sign/mlsec-issuer"      { capabilities = ["update"] }
path "transit/keys/mlsec-issuer"      { capabilities = ["read"] }
