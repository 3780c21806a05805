# operator-bootstrap: after `mlsec operator revoke-root`, bootstrap (`mlsec up`) makes a root
# token for its own run and revokes it when it ends. Making one also needs the unseal key,
# which only the holder of the state folder's secrets has.
path "sys/generate-root-token/attempt"  { capabilities = ["read", "update", "delete"] }
path "sys/generate-root-token/update"   { capabilities = ["update"] }
