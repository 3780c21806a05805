"""Platform settings and profiles.

Two profiles share every code path; they differ only in where addresses and bootstrap
credentials come from:

- ``local`` (default): the product starts its own servers on loopback and records the ports
  it chose in ``<state_dir>/stack.json``; bootstrap secrets live in 0600 files under
  ``<state_dir>/secrets``.
- ``stack``: addresses come from the environment (``MLSEC_VAULT_ADDR`` ...) and bootstrap
  secrets from files in ``MLSEC_BOOTSTRAP_DIR`` (e.g. mounted Docker secrets).
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlsec_platform.errors import ConfigurationError


class Profile(StrEnum):
    LOCAL = "local"
    STACK = "stack"


class Endpoints(BaseModel):
    """Where the four servers answer. Never holds a secret."""

    vault_addr: str
    s3_endpoint: str
    postgres_host: str = "127.0.0.1"
    postgres_port: int
    nats_url: str


class Zone(StrEnum):
    """Storage zones; each is one bucket."""

    LANDING = "landing"
    RAW = "raw"
    SILVER = "silver"
    GOLD = "gold"
    FEATURES = "features"
    COLD = "cold"
    QUARANTINE = "quarantine"


def bucket_name(prefix: str, zone: Zone | str) -> str:
    """The bucket of ``zone`` under the deployment's bucket ``prefix``: ``mlsec-raw``."""
    return f"{prefix}{Zone(zone).value}"


class PlatformSettings(BaseSettings):
    """Every knob of the platform, read from ``MLSEC_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MLSEC_", extra="ignore")

    profile: Profile = Profile.LOCAL
    state_dir: Path = Field(default=Path(".mlsec"))
    bucket_prefix: str = "mlsec-"
    s3_region: str = "us-east-1"
    warehouse_db: str = "warehouse"
    dagster_db: str = "dagster"

    # Lifetimes of Vault-issued credentials, in seconds.
    token_ttl: int = 3600
    token_max_ttl: int = 4 * 3600
    pg_writer_ttl: int = 3600
    pg_reader_ttl: int = 900
    pg_audit_ttl: int = 3600

    # Ingestion.
    gateway_port: int = 8470
    gateway_max_file_bytes: int = 512 * 1024 * 1024
    gateway_max_events_bytes: int = 64 * 1024 * 1024
    gateway_max_concurrent_uploads: int = 4
    upload_token_ttl: int = 3600
    #: How long a fetched event may stay unacknowledged before NATS delivers it again.
    nats_ack_wait: float = 60.0
    events_batch_size: int = 50_000

    # Access Broker.
    broker_port: int = 8480
    #: JWKS of the OIDC provider whose tokens the broker accepts (`stack` profile). Unset:
    #: the local issuer, whose key is held by OpenBao transit.
    broker_jwks_url: str | None = None
    broker_issuer: str = "mlsec-local"
    broker_audience: str = "mlsec-broker"
    broker_token_algorithms: tuple[str, ...] = ("EdDSA",)
    #: Memory for pinned snapshots of curated tables (least recently used leave first).
    broker_cache_bytes: int = 1 << 30
    #: How long the latest materialization of an asset is reused before asking Dagster again.
    broker_lineage_ttl: float = 1.0
    broker_max_concurrent_queries: int = 16
    #: A folder of policy files to use instead of the packaged ones.
    broker_policy_dir: Path | None = None

    # Engine of the curated transforms: duckdb (default) or spark (local mode here).
    engine: Literal["duckdb", "spark"] = "duckdb"
    #: Memory a run may use to keep the tables it committed for its own later steps (0: none).
    committed_cache_bytes: int = 4 << 30

    # Lifecycle: raw batches ingested longer ago than this move to the cold zone.
    raw_retention_days: int = 365

    # `local` profile: preferred ports, replaced by free ones when taken.
    vault_port: int = 8200
    s3_port: int = 8333
    postgres_port: int = 5432
    nats_port: int = 4222
    # Tests ask for free ports only, so they never collide with a running `mlsec up`.
    prefer_default_ports: bool = True

    # `stack` profile: addresses and the folder holding bootstrap secrets.
    vault_addr: str | None = None
    s3_endpoint: str | None = None
    postgres_host: str | None = None
    nats_url: str | None = None
    bootstrap_dir: Path | None = None

    @cached_property
    def root(self) -> Path:
        return self.state_dir.resolve()

    @property
    def secrets_dir(self) -> Path:
        """Bootstrap secrets of the `local` profile (0700 folder, 0600 files)."""
        if self.profile is Profile.STACK:
            if self.bootstrap_dir is None:
                raise ConfigurationError("profile 'stack' needs MLSEC_BOOTSTRAP_DIR")
            return self.bootstrap_dir.resolve()
        return self.root / "secrets"

    @property
    def identities_dir(self) -> Path:
        """Where each workload identity's AppRole credentials are delivered (0600 files)."""
        return self.root / "identities"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    def bucket(self, zone: Zone | str) -> str:
        return bucket_name(self.bucket_prefix, zone)

    def endpoints(self) -> Endpoints:
        """Addresses of the running servers, for either profile."""
        if self.profile is Profile.STACK:
            missing = [
                name
                for name in ("vault_addr", "s3_endpoint", "postgres_host", "nats_url")
                if getattr(self, name) is None
            ]
            if missing:
                env = ", ".join(f"MLSEC_{m.upper()}" for m in missing)
                raise ConfigurationError(f"profile 'stack' needs {env}")
            return Endpoints(
                vault_addr=self.vault_addr,
                s3_endpoint=self.s3_endpoint,
                postgres_host=self.postgres_host,
                postgres_port=self.postgres_port,
                nats_url=self.nats_url,
            )
        if not self.stack_file.exists():
            raise ConfigurationError(
                f"no running local stack under {self.root}: start it with `mlsec up`"
            )
        state = json.loads(self.stack_file.read_text())
        return Endpoints.model_validate(state["endpoints"])


def get_settings() -> PlatformSettings:
    """The settings of this process (one place decides the environment)."""
    return PlatformSettings()
