# operator-erase: `mlsec erase`, one data subject out of every zone. It borrows the storage
# rights of the two identities that already remove data there, for the length of the command:
# `lifecycle`'s S3 key (the only one that deletes in Raw; also Cold, landing, quarantine and
# the token vault) and `pipeline`'s (Silver, Gold, features) with a warehouse-writer login
# (warehouse and online store). It finds the subject's tokens in the token vault with the
# index key, as the pipeline does (that key only says "this value has that token" for a value
# one holds; it opens nothing), and keys the subject hash and signs the receipt with the
# `erasure-receipts` key, which never leaves OpenBao. It unwraps no data key: no reveal.
path "mlsec/data/s3/lifecycle"            { capabilities = ["read"] }
path "mlsec/data/s3/pipeline"             { capabilities = ["read"] }
path "database/creds/warehouse-writer"    { capabilities = ["read"] }
path "mlsec/data/tokens/index-key"        { capabilities = ["read"] }
path "transit/decrypt/token-index"        { capabilities = ["update"] }
path "transit/hmac/erasure-receipts"      { capabilities = ["update"] }
path "transit/sign/erasure-receipts"      { capabilities = ["update"] }
