# operator-erase: `mlsec erase`, one data subject out of every zone. It borrows the storage
# rights of the two identities that already remove data there, for the length of the command:
# `lifecycle`'s S3 key (the only one that deletes in Raw; also Cold, landing and quarantine)
# and `pipeline`'s (Silver, Gold, features) with a warehouse-writer login (warehouse and
# online store). It finds the subject's tokens by tokenizing their values again (encrypt with
# the convergent key; it decrypts and exports nothing), and keys the subject hash and signs
# the receipt with the `erasure-receipts` key, which never leaves OpenBao.
path "mlsec/data/s3/lifecycle"            { capabilities = ["read"] }
path "mlsec/data/s3/pipeline"             { capabilities = ["read"] }
path "database/creds/warehouse-writer"    { capabilities = ["read"] }
path "transit/keys/tokenization"          { capabilities = ["read"] }
path "transit/encrypt/tokenization"       { capabilities = ["update"] }
path "transit/hmac/erasure-receipts"      { capabilities = ["update"] }
path "transit/sign/erasure-receipts"      { capabilities = ["update"] }
