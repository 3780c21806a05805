# reveal: turning tokens back into clear values. Granted to no workload by default;
# every use is recorded by the OpenBao audit device and the platform audit log.
path "transit/decrypt/tokenization" { capabilities = ["update"] }
