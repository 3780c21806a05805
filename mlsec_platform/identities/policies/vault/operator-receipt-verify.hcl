# operator-receipt-verify: `mlsec receipt verify`. Reads the public halves of the key that
# certifies the brokers' lineage-receipt keys (the receipt JWKS); it signs nothing.
path "transit/keys/broker-receipts"    { capabilities = ["read"] }
