"""Idempotent bootstrap of identities and permissions across OpenBao, S3 and PostgreSQL.

Uses the bootstrap credentials (0600 files in the secrets folder) and nothing else; workloads
never see them. Re-running it changes nothing that is already right, repairs what is not, and
picks up changed addresses (e.g. a new Postgres port).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hvac

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.identities.catalog import (
    BROKER_KEY_NAMES,
    BROKER_KEYS,
    ROW_SCOPE_SIGNING_KEY,
)
from mlsec_platform.identities.operators import ROOT_TOKEN, bootstrap_root_token, root_revoked
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.settings import Endpoints, PlatformSettings, Profile
from mlsec_platform.sources import event_stream
from mlsec_platform.stack.bootstrap.operators import bootstrap_operators
from mlsec_platform.stack.bootstrap.pki import bootstrap_pki
from mlsec_platform.stack.bootstrap.postgres import DAGSTER_USER, bootstrap_postgres
from mlsec_platform.stack.bootstrap.s3 import bootstrap_s3, rotate_s3_key, user_admin
from mlsec_platform.stack.bootstrap.vault import bootstrap_vault, read_kv, write_kv
from mlsec_platform.stack.os_users import (
    SINGLE_USER_NOTE,
    ensure_users,
    separated,
    share_dagster_home,
)
from mlsec_platform.stack.secret_files import (
    new_password,
    read_secret,
    read_secret_json,
    write_secret,
)
from mlsec_platform.storage.row_scope import seed_key as seed_row_scope_key


@dataclass(frozen=True, repr=False)
class BootstrapCredentials:
    """The few secrets that exist before OpenBao can hand out anything (never printed).

    ``vault_token`` is the root token, or None once `mlsec operator revoke-root` revoked it:
    then :meth:`vault_session` makes a root token for one bootstrap run and revokes it after.
    """

    settings: PlatformSettings
    vault_token: str | None
    s3_admin: dict
    postgres_superuser_password: str

    @classmethod
    def load(cls, settings: PlatformSettings) -> BootstrapCredentials:
        """The bootstrap secrets; a missing one is a configuration error that names the fix."""
        folder = settings.secrets_dir
        root = folder / ROOT_TOKEN
        try:
            return cls(
                settings=settings,
                vault_token=read_secret(root)
                if root.exists() or not root_revoked(settings)
                else None,
                s3_admin=read_secret_json(folder / "s3-admin.json"),
                postgres_superuser_password=read_secret(folder / "postgres-superuser"),
            )
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"no bootstrap secrets under {folder} ({Path(exc.filename).name} is missing): "
                "start the stack with `mlsec up`, or set MLSEC_STATE_DIR (local) or "
                "MLSEC_BOOTSTRAP_DIR (stack) to where they are"
            ) from None

    def vault(self, endpoints: Endpoints) -> hvac.Client:
        """A client on the root token (which must still exist: see :meth:`vault_session`)."""
        if self.vault_token is None:
            raise ConfigurationError(
                "the OpenBao root token was revoked (`mlsec operator revoke-root`): operator "
                "commands log in as the operator; bootstrap makes a root token of its own"
            )
        return vault_client(endpoints.vault_addr, self.vault_token, settings=self.settings)

    @contextmanager
    def vault_session(self, endpoints: Endpoints) -> Iterator[hvac.Client]:
        """A root client for one bootstrap run: the root token, or one made for the run."""
        if self.vault_token is not None:
            yield self.vault(endpoints)
            return
        with bootstrap_root_token(self.settings, endpoints) as token:
            yield vault_client(endpoints.vault_addr, token, settings=self.settings)

    def postgres_dsn(self, endpoints: Endpoints) -> dict:
        return {
            "host": endpoints.postgres_host,
            "port": endpoints.postgres_port,
            "user": "postgres",
            "password": self.postgres_superuser_password,
            **self.settings.postgres_tls(),
        }


def _generated_secret(settings: PlatformSettings, name: str) -> str:
    path = settings.secrets_dir / name
    if not path.exists():
        write_secret(path, new_password())
    return read_secret(path)


def bootstrap(
    settings: PlatformSettings,
    endpoints: Endpoints,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    creds = BootstrapCredentials.load(settings)
    if separated(settings):
        ensure_users()  # before the credentials are delivered to them
        share_dagster_home(settings)
        progress("  os users   one per identity (mlsec-<identity>), its credentials its own")
    else:
        progress(f"  os users   none: {SINGLE_USER_NOTE}")
    with creds.vault_session(endpoints) as vault:
        _bootstrap(settings, endpoints, creds, vault, progress)


def _bootstrap(
    settings: PlatformSettings,
    endpoints: Endpoints,
    creds: BootstrapCredentials,
    vault: hvac.Client,
    progress: Callable[[str], None],
) -> None:
    t0 = time.monotonic()
    # The Dagster instance password lives in OpenBao from the first bootstrap on.
    vault_admin_password = _generated_secret(settings, "postgres-vault-admin")
    dagster = read_kv_safe(vault, "postgres/dagster") or {
        "username": DAGSTER_USER,
        "password": new_password(),
    }

    bootstrap_postgres(
        creds.postgres_dsn(endpoints),
        warehouse_db=settings.warehouse_db,
        dagster_db=settings.dagster_db,
        vault_admin_password=vault_admin_password,
        dagster_password=dagster["password"],
    )
    progress(f"  postgres   roles, databases and the audit schema ({time.monotonic() - t0:.1f}s)")

    t1 = time.monotonic()
    bootstrap_vault(
        vault,
        settings,
        endpoints,
        vault_admin_password=vault_admin_password,
        bind_loopback=settings.profile is Profile.LOCAL,
    )
    write_kv(vault, "postgres/dagster", dagster)
    # The broker's own keys (keyed-hash masking, cursor signing, row-scope signing): made once,
    # kept on re-runs, so masked values and issued cursors stay valid across restarts; a key
    # added by a newer release is made on the next run.
    keys = read_kv_safe(vault, BROKER_KEYS) or {}
    missing = {n: base64.b64encode(secrets.token_bytes(32)).decode() for n in BROKER_KEY_NAMES}
    missing = {n: v for n, v in missing.items() if n not in keys}
    if missing:
        keys = {**keys, **missing}
        write_kv(vault, BROKER_KEYS, keys)
    # The warehouse verifies the scopes the broker signs with this key (storage/row_scope.py).
    seed_row_scope_key(
        creds.postgres_dsn(endpoints),
        settings.warehouse_db,
        base64.b64decode(keys[ROW_SCOPE_SIGNING_KEY]),
    )
    # Each workload's NATS login goes to OpenBao; the platform (admin) login stays here.
    nats_credentials = read_secret_json(settings.secrets_dir / "nats-platform.json")
    for user in ("gateway", "connector"):
        write_kv(
            vault, f"nats/{user}", read_secret_json(settings.secrets_dir / f"nats-{user}.json")
        )
    operator = bootstrap_operators(vault, settings, bind_loopback=settings.profile is Profile.LOCAL)
    ca_bundle = bootstrap_pki(vault, settings)
    progress(f"  openbao    engines, policies and AppRoles ({time.monotonic() - t1:.1f}s)")
    progress(f"  tls        the platform CA (OpenBao PKI), its certificate in {ca_bundle}")
    progress(f"  operator   OpenBao login `operator`, credential in {operator}")

    t2 = time.monotonic()
    bootstrap_s3(vault, settings, endpoints.s3_endpoint, creds.s3_admin)
    progress(f"  seaweedfs  zone buckets and per-identity keys ({time.monotonic() - t2:.1f}s)")

    t3 = time.monotonic()
    asyncio.run(_bootstrap_nats(endpoints.nats_url, nats_credentials, settings.nats_ack_wait))
    progress(f"  nats       event stream and durable consumers ({time.monotonic() - t3:.1f}s)")


async def _bootstrap_nats(url: str, credentials: dict, ack_wait: float) -> None:
    nc = await event_stream.connect(url, credentials)
    try:
        await event_stream.ensure_stream(nc, ack_wait_seconds=ack_wait)
    finally:
        await nc.close()


def read_kv_safe(vault: hvac.Client, path: str) -> dict | None:
    """Read KV before the engine may exist (first bootstrap)."""
    mounts = vault.sys.list_mounted_secrets_engines()["data"]
    return read_kv(vault, path) if "mlsec/" in mounts else None


def rotate_s3_keys(
    settings: PlatformSettings, identities: list[str], vault: hvac.Client
) -> dict[str, str]:
    """New S3 key for each identity, stored in OpenBao through ``vault``, old keys deleted.

    ``vault`` may write the identities' keys (an operator's `rotate-s3-keys` token). Running
    workloads pick the new key up when they next re-read OpenBao. Returns the new key ids
    (identifiers, not secrets).
    """
    creds = BootstrapCredentials.load(settings)
    endpoints = settings.endpoints()
    users = user_admin(settings, endpoints.s3_endpoint, creds.s3_admin)
    return {name: rotate_s3_key(vault, users, name) for name in identities}
