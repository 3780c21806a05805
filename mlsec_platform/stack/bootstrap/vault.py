"""OpenBao engines, policies and AppRoles (idempotent, run with the bootstrap token)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import hvac
from hvac.exceptions import InvalidPath

from mlsec_platform.identities.catalog import BROKER_RECEIPT_KEY, IDENTITIES, Identity
from mlsec_platform.identities.catalog import _read as read_policy_file
from mlsec_platform.privacy.erasure.receipt import RECEIPT_KEY
from mlsec_platform.privacy.tokens import INDEX_KEY, INDEX_KEY_PATH, WRAP_KEY
from mlsec_platform.settings import Endpoints, PlatformSettings
from mlsec_platform.stack.bootstrap.postgres import VAULT_ADMIN
from mlsec_platform.stack.secret_files import ensure_private_dir, read_secret, write_secret

KV_MOUNT = "mlsec"
#: The transit key tokens were once made with: exportable, so whoever exported it could reverse
#: every token offline. Tokens come from the token vault now; bootstrap deletes it.
RETIRED_TOKENIZATION_KEY = "tokenization"
ISSUER_KEY = "mlsec-issuer"
EXTRA_POLICIES = ("reveal", "issuer")


def _dynamic_role_sql(group: str, *settings: str) -> list[str]:
    statements = [
        f"CREATE ROLE \"{{{{name}}}}\" WITH LOGIN PASSWORD '{{{{password}}}}' "
        f"VALID UNTIL '{{{{expiration}}}}' IN ROLE {group};"
    ]
    statements += [f'ALTER ROLE "{{{{name}}}}" SET {s};' for s in settings]
    return statements


REVOCATION_SQL = [
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
    'DROP ROLE IF EXISTS "{{name}}";',
]


def database_roles(settings: PlatformSettings) -> dict[str, tuple[list[str], int]]:
    """Vault database role -> (creation statements, TTL seconds)."""
    return {
        # Writers act as warehouse_owner so the tables they make outlive their login.
        "warehouse-writer": (
            _dynamic_role_sql("warehouse_writer", "role = 'warehouse_owner'"),
            settings.pg_writer_ttl,
        ),
        "warehouse-reader": (
            _dynamic_role_sql("warehouse_reader", "default_transaction_read_only = on"),
            settings.pg_reader_ttl,
        ),
        "audit-writer": (_dynamic_role_sql("audit_writer"), settings.pg_audit_ttl),
        "audit-reader": (
            _dynamic_role_sql("audit_reader", "default_transaction_read_only = on"),
            settings.pg_audit_ttl,
        ),
        # The broker's view of the Dagster event log (lineage), never the owner login.
        "lineage-reader": (
            _dynamic_role_sql("lineage_reader", "default_transaction_read_only = on"),
            settings.pg_reader_ttl,
        ),
        # The broker's shared rate, quota and concurrency counters (schema ``limits``).
        "limits-keeper": (_dynamic_role_sql("limits_keeper"), settings.pg_limits_ttl),
    }


def _enable(client: hvac.Client, backend: str, path: str, **options) -> None:
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    if f"{path}/" not in mounts:
        client.sys.enable_secrets_engine(backend, path=path, **options)


def bootstrap_vault(
    client: hvac.Client,
    settings: PlatformSettings,
    endpoints: Endpoints,
    *,
    vault_admin_password: str,
    bind_loopback: bool,
) -> None:
    """Engines, policies, the Postgres connection, dynamic roles and one AppRole per identity."""
    _enable(client, "kv", KV_MOUNT, options={"version": "2"})
    _enable(client, "database", "database")
    _enable(client, "transit", "transit")
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")

    ensure_token_keys(client)
    delete_transit_key(client, RETIRED_TOKENIZATION_KEY)

    try:
        client.secrets.transit.read_key(ISSUER_KEY)
    except InvalidPath:
        # Signs identity tokens (uploaders now, broker users later); rotating the key adds
        # a version, which is the token's `kid`, so old tokens verify until retired.
        client.secrets.transit.create_key(ISSUER_KEY, key_type="ed25519")
    try:
        client.secrets.transit.read_key(RECEIPT_KEY)
    except InvalidPath:
        # Never exportable: a receipt is only ever signed inside OpenBao.
        client.secrets.transit.create_key(RECEIPT_KEY, key_type="ed25519")
    try:
        client.secrets.transit.read_key(BROKER_RECEIPT_KEY)
    except InvalidPath:
        client.secrets.transit.create_key(BROKER_RECEIPT_KEY, key_type="ed25519")

    for identity in IDENTITIES.values():
        client.sys.create_or_update_policy(identity.name, identity.vault_policy())
    for name in EXTRA_POLICIES:
        client.sys.create_or_update_policy(name, read_policy_file("vault", f"{name}.hcl"))

    client.secrets.database.configure(
        name="warehouse",
        plugin_name="postgresql-database-plugin",
        connection_url=(
            f"postgresql://{{{{username}}}}:{{{{password}}}}@{endpoints.postgres_host}:"
            f"{endpoints.postgres_port}/{settings.warehouse_db}?{urlencode(settings.postgres_tls())}"
        ),
        username=VAULT_ADMIN,
        password=vault_admin_password,
        allowed_roles=list(database_roles(settings)),
        verify_connection=True,
        password_authentication="scram-sha-256",  # noqa: S106 - a method name
    )
    for role, (creation, ttl) in database_roles(settings).items():
        client.secrets.database.create_role(
            name=role,
            db_name="warehouse",
            creation_statements=creation,
            revocation_statements=REVOCATION_SQL,
            default_ttl=f"{ttl}s",
            max_ttl=f"{ttl}s",
        )

    cidrs = ["127.0.0.1/32"] if bind_loopback else None
    for identity in IDENTITIES.values():
        client.auth.approle.create_or_update_approle(
            identity.name,
            token_policies=[identity.name],
            token_ttl=f"{settings.token_ttl}s",
            token_max_ttl=f"{settings.token_max_ttl}s",
            token_type="service",  # noqa: S106 - a token kind
            secret_id_ttl=f"{settings.secret_id_ttl}s",
            secret_id_bound_cidrs=cidrs,
            token_bound_cidrs=cidrs,
        )
        deliver_approle_credentials(
            client, settings.identities_dir, identity, settings.secret_id_ttl
        )


def ensure_token_keys(client: hvac.Client) -> None:
    """The token vault's transit keys (``privacy/tokens.py``), neither exportable, and the
    index key, made once by transit and stored only wrapped by ``token-index``."""
    for name in (WRAP_KEY, INDEX_KEY):
        try:
            client.secrets.transit.read_key(name)
        except InvalidPath:
            client.secrets.transit.create_key(name, key_type="aes256-gcm96", exportable=False)
    if read_kv(client, INDEX_KEY_PATH) is None:
        made = client.secrets.transit.generate_data_key(INDEX_KEY, key_type="wrapped", bits=256)
        write_kv(client, INDEX_KEY_PATH, {"wrapped": made["data"]["ciphertext"]})


def delete_transit_key(client: hvac.Client, name: str) -> None:
    """Delete transit key ``name`` if it exists (transit refuses until deletion is allowed)."""
    try:
        client.secrets.transit.read_key(name)
    except InvalidPath:
        return
    client.secrets.transit.update_key_configuration(name, deletion_allowed=True)
    client.secrets.transit.delete_key(name)


def deliver_approle_credentials(
    client: hvac.Client, folder: Path, identity: Identity, ttl: int
) -> None:
    """Write the identity's role_id and secret_id (0600) where its workloads will read them.

    A secret_id expires after ``ttl`` seconds, so one copied out of the folder stops working
    on its own. An existing one with more than half of ``ttl`` left is kept (bootstrap runs at
    every `mlsec up` and piles up nothing); a missing, revoked or aging one is replaced, and
    the one replaced is destroyed. Workloads read the file at each login, so a running one
    moves to the new secret_id at its next login.
    """
    target = ensure_private_dir(folder / identity.name)
    role_id = client.auth.approle.read_role_id(identity.name)["data"]["role_id"]
    secret_file = target / "secret_id"
    old = read_secret(secret_file) if secret_file.exists() else None
    if old and (target / "role_id").exists():
        left = _seconds_left(client, identity.name, old)
        if left is not None and left > ttl / 2:
            return
    secret_id = client.auth.approle.generate_secret_id(identity.name)["data"]["secret_id"]
    write_secret(target / "role_id", role_id)
    write_secret(secret_file, secret_id)
    if old:
        with contextlib.suppress(hvac.exceptions.VaultError):
            client.auth.approle.destroy_secret_id(identity.name, old)


def _seconds_left(client: hvac.Client, role: str, secret_id: str) -> float | None:
    """Seconds until ``secret_id`` of ``role`` expires; None when OpenBao no longer has it."""
    try:
        found = client.auth.approle.read_secret_id(role, secret_id)
    except hvac.exceptions.VaultError:  # InvalidPath and InvalidRequest among them
        return None
    if not found or not found.get("data"):
        return None
    expires = found["data"].get("expiration_time") or ""
    if expires.startswith("0001-01-01"):  # issued without a TTL (before TTLs existed)
        return 0.0
    return (datetime.fromisoformat(expires) - datetime.now(UTC)).total_seconds()


def read_kv(client: hvac.Client, path: str) -> dict | None:
    try:
        return client.secrets.kv.v2.read_secret_version(
            path, mount_point=KV_MOUNT, raise_on_deleted_version=True
        )["data"]["data"]
    except InvalidPath:
        return None


def write_kv(client: hvac.Client, path: str, data: dict) -> None:
    client.secrets.kv.v2.create_or_update_secret(path, secret=data, mount_point=KV_MOUNT)
