# operator-rotate-tokenization-key: `mlsec rotate tokenization-key`. Reads the key's versions,
# adds one, and retires the old ones (min_decryption_version) once everything is re-tokenized.
# It decrypts and exports nothing: the re-tokenization runs as the pipeline identity.
path "transit/keys/tokenization"         { capabilities = ["read"] }
path "transit/keys/tokenization/rotate"  { capabilities = ["update"] }
path "transit/keys/tokenization/config"  { capabilities = ["update"] }
