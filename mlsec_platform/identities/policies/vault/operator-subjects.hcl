# operator-subjects: `mlsec subject resume`. A short login of the limits keeper, which reads
# and lifts the holds exfiltration detection put on broker subjects (schema `limits`).
path "database/creds/limits-keeper"  { capabilities = ["read"] }
