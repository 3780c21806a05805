#!/usr/bin/env bash
# Brings the whole platform up with Docker Compose, runs the demo flow through it and verifies
# the audit chain. Run from anywhere; needs docker compose v2, curl, openssl and python3.
# First run: makes ./secrets (random values), initialises OpenBao (its static seal unseals it
# at every start after), bootstraps. Later runs reuse all of it. Exit 0 only if every step did.
set -euo pipefail
cd "$(dirname "$0")"
compose() { docker compose "$@"; }
mlsec() { compose run --rm -T bootstrap "$@"; }   # the operator's container (all secrets)
alone() { compose run --rm -T --no-deps bootstrap "$@"; }   # the same, servers not started
step() { printf '\n== %s\n' "$*"; }

step "bootstrap secrets (./secrets, 0600)"
umask 077
mkdir -p secrets
rand() { printf 'p%s' "$(openssl rand -hex 24)"; }   # NATS reads values like config tokens
keep() { [ -s "secrets/$1" ] || { "${@:2}" > "secrets/$1"; echo "  made $1"; }; }
keep postgres-superuser rand
keep postgres-vault-admin rand
keep minio-root-user printf 'mlsecadmin%s' "$(openssl rand -hex 4)"
keep minio-root-password rand
keep openbao-seal.key openssl rand 32
keep metrics-scrape-credential rand
keep grafana-admin-password rand
if [ ! -s secrets/nats.env ]; then
  for user in platform gateway connector; do
    password=$(rand)
    printf 'NATS_%s_PASSWORD=%s\n' "${user^^}" "$password" >> secrets/nats.env
    printf '{"user": "%s", "password": "%s"}\n' "$user" "$password" > "secrets/nats-$user.json"
  done
  unset password
fi
# The platform mints MinIO users with the root user through MinIO's admin API.
printf '{"access_key": "%s", "secret_key": "%s"}\n' \
  "$(cat secrets/minio-root-user)" "$(cat secrets/minio-root-password)" > secrets/s3-admin.json

step "build; OpenBao's TLS certificate (bootstrap CA); start OpenBao"
MLSEC_UID=$(id -u) compose build --quiet bootstrap
# First, so the image makes the `ca` and TLS volumes with the platform user as their owner.
renewed=$(alone server-certs --listener-only)
[ -n "$renewed" ] && compose rm -sf openbao > /dev/null   # a new certificate: a new start
compose up -d --wait openbao

if ! compose exec -T openbao bao status -format=json | python3 -c \
    'import json, sys; sys.exit(0 if json.load(sys.stdin)["initialized"] else 1)'; then
  step "initialise OpenBao (once; the recovery key goes to secrets/, move it offline)"
  compose exec -T openbao bao operator init -format=json -recovery-shares=1 \
      -recovery-threshold=1 > secrets/openbao-init.json
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["root_token"], end="")' \
      secrets/openbao-init.json > secrets/openbao-bootstrap-token
  until compose exec -T openbao bao status > /dev/null; do sleep 1; done   # unsealed
fi

step "the other servers' TLS certificates (platform CA, when due); start them"
renewed=$(alone server-certs)
for server in $renewed; do   # a renewed certificate is read at start
  compose rm -sf "$server" > /dev/null
done
compose up -d --wait minio postgres nats

step "bootstrap: policies, AppRoles, PKI, buckets, MinIO users, Postgres roles, stream"
mlsec bootstrap

step "start Dagster (webserver, daemon, three code servers), the gateway and the broker"
compose up -d dagster-webserver dagster-daemon gateway broker
mlsec cert issue --subject smoke --out /run/secrets/mlsec/smoke-client --ttl 1h > /dev/null
# Prometheus's client certificate, renewed at every run (client certificates are short-lived).
mlsec cert issue --subject prometheus --out /run/secrets/mlsec > /dev/null
compose up -d --force-recreate pipeline-metrics prometheus grafana
TLS=(--cacert secrets/smoke-client/ca.pem --cert secrets/smoke-client/smoke.pem
     --key secrets/smoke-client/smoke-key.pem)
for port in 8470 8480; do
  until curl -sf "${TLS[@]}" "https://127.0.0.1:$port/health" > /dev/null; do sleep 2; done
done
until curl -sf http://127.0.0.1:3000/server_info > /dev/null; do sleep 2; done

step "upload sellers through the gateway; the sensors and automation take them to Gold"
seller=$(openssl rand -hex 16)
printf 'seller_id,seller_zip_code_prefix,seller_city,seller_state\n%s,01310,sao paulo,SP\n' \
  "$seller" > secrets/smoke-sellers.csv
upload=$(mlsec token issue --subject smoke --scope upload:olist_sellers \
  --cert /run/secrets/mlsec/smoke-client/smoke.pem)
curl -sf "${TLS[@]}" -X PUT https://127.0.0.1:8470/v1/files/olist_sellers \
  --data-binary @secrets/smoke-sellers.csv -H "Authorization: Bearer $upload" \
  -H "Content-Type: text/csv"
reader=$(mlsec token issue --audience mlsec-broker --subject smoke --group analysts \
  --project olist-br --purpose analytics --clearance internal \
  --cert /run/secrets/mlsec/smoke-client/smoke.pem)
query='{"dataset": "gold/dim_seller", "columns": ["seller_id"],
        "filters": [{"column": "seller_id", "op": "eq", "value": "'"$seller"'"}], "limit": 1}'
for _ in $(seq 1 90); do   # sensors every 30 s, automation every 30 s, then the runs
  if curl -sf "${TLS[@]}" https://127.0.0.1:8480/query -H "Authorization: Bearer $reader" \
      -H "Content-Type: application/json" -d "$query" | grep -q "$seller"; then
    echo "  the uploaded seller is in gold/dim_seller, read through the broker"
    break
  fi
  sleep 5
done
curl -sf "${TLS[@]}" https://127.0.0.1:8480/query -H "Authorization: Bearer $reader" \
  -H "Content-Type: application/json" -d "$query" | grep -q "$seller"

step "Prometheus scrapes the broker, the gateway and the pipeline metrics"
until curl -sf 'http://127.0.0.1:9090/api/v1/query?query=sum(up)' | python3 -c \
    'import json, sys; r = json.load(sys.stdin)["data"]["result"]; sys.exit(r[0]["value"][1] != "3")' \
    2> /dev/null; do sleep 5; done
echo "  3 of 3 targets up; dashboard: http://127.0.0.1:3001 (admin, secrets/grafana-admin-password)"

step "verify the audit chain"
mlsec audit verify
echo "smoke: ok"
