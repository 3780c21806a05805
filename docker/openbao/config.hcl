# OpenBao for the `stack` profile, mounted at /openbao/config/config.hcl (the image's
# entrypoint loads every file in /openbao/config). Same shape as the `local` profile.

# The image prepares /openbao/file and /openbao/logs for its non-root `openbao` user, so
# the named volumes go there (a new path would be created root-owned and unwritable).
storage "raft" {
  path    = "/openbao/file"
  node_id = "mlsec-1"
}

# TLS only, with the certificate `mlsec server-certs --listener-only` issued from the
# bootstrap CA (OpenBao cannot get its own from its PKI engine before it is up); compose.yaml
# copies it here at each start. A renewed one takes a restart of the container.
listener "tcp" {
  address            = "0.0.0.0:8200"
  cluster_address    = "0.0.0.0:8201"
  tls_cert_file      = "/openbao/tls/server.pem"
  tls_key_file       = "/openbao/tls/server.key"
  tls_min_version    = "tls12"
}

# Automatic unseal from a 32-byte key mounted as a Docker secret (secrets/openbao-seal.key),
# so a restart needs no hand. The key protects the root key: it lives outside the OpenBao
# volume, and on a production host comes from its own secret store. For production prefer
# a seal whose key never leaves a device or service: `transit` (another OpenBao or Vault),
# `awskms`, `gcpckms`, `azurekeyvault` or `pkcs11` (from OpenBao 2.7 some are KMS plugins).
# Initialising with this seal prints recovery keys instead of unseal keys (README.md).
seal "static" {
  current_key_id = "1"
  current_key    = "file:///run/secrets/openbao_seal_key"
}

# Declarative audit device (OpenBao refuses to enable audit devices through the API).
# Secrets in requests and responses are HMAC'd, never written in clear.
audit "file" "file" {
  options {
    file_path = "/openbao/logs/audit.log"
    mode      = "0600"
  }
}

api_addr     = "https://openbao:8200"
cluster_addr = "https://openbao:8201"
# mlock is off as in the `local` profile (raft storage memory-maps its database, and the
# container then needs no IPC_LOCK capability); keep swap disabled on the host instead.
disable_mlock = true
ui            = false
log_level     = "warn"
