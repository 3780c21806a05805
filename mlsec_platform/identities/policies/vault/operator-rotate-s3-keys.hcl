# operator-rotate-s3-keys: `mlsec rotate s3-keys`. Stores each identity's new S3 key where its
# workloads read it (the keys themselves are minted with the S3 admin credentials). It may
# write them, not read them back.
path "mlsec/data/s3/*"  { capabilities = ["create", "update"] }
