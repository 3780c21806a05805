# operator-rotate-token-keys: `mlsec rotate token-keys`. Adds a version to each of the token
# vault's transit keys, rewraps what they wrap (OpenBao re-seals inside; nobody sees a key),
# writes back the wrapped index key, and retires the old versions (min_decryption_version).
# It unwraps and exports nothing: no token turns back into its value with it.
path "transit/keys/token-wrap"          { capabilities = ["read"] }
path "transit/keys/token-wrap/rotate"   { capabilities = ["update"] }
path "transit/keys/token-wrap/config"   { capabilities = ["update"] }
path "transit/rewrap/token-wrap"        { capabilities = ["update"] }
path "transit/keys/token-index"         { capabilities = ["read"] }
path "transit/keys/token-index/rotate"  { capabilities = ["update"] }
path "transit/keys/token-index/config"  { capabilities = ["update"] }
path "transit/rewrap/token-index"       { capabilities = ["update"] }
path "mlsec/data/tokens/index-key"      { capabilities = ["read", "update"] }
