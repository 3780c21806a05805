# operator-erase-verify: `mlsec erase verify`. Checks a receipt's signature with the
# `erasure-receipts` key and reads its public half; it signs nothing.
path "transit/verify/erasure-receipts"  { capabilities = ["update"] }
path "transit/keys/erasure-receipts"    { capabilities = ["read"] }
