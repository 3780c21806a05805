# operator-erase: `mlsec erase`, one data subject out of every zone. For the length of the
# command it reads the S3 keys of `lifecycle` (the only one that deletes in Raw; also Cold)
# and `pipeline` (Silver, Gold, features), a warehouse-writer login (warehouse and online
# store), and the keys of `eraser`, an S3 user no workload runs as, which alone deletes in the
# token vault and rewrites landing and quarantine: no other policy reads them. It finds the
# subject's tokens in the token vault with the index key, as the pipeline does (that key only
# says "this value has that token" for a value one holds; it opens nothing), and keys the
# subject hash and signs the receipt with the `erasure-receipts` key, which never leaves
# OpenBao. It unwraps no data key: no reveal.
path "mlsec/data/s3/lifecycle"            { capabilities = ["read"] }
path "mlsec/data/s3/pipeline"             { capabilities = ["read"] }
path "mlsec/data/s3/eraser"               { capabilities = ["read"] }
path "database/creds/warehouse-writer"    { capabilities = ["read"] }
path "mlsec/data/tokens/index-key"        { capabilities = ["read"] }
path "transit/decrypt/token-index"        { capabilities = ["update"] }
path "transit/hmac/erasure-receipts"      { capabilities = ["update"] }
path "transit/sign/erasure-receipts"      { capabilities = ["update"] }
