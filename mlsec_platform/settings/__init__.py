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
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.settings.types import (
    Endpoints,
    Profile,
    ServerName,
    Zone,
    bucket_name,
)

__all__ = [
    "Endpoints",
    "PlatformSettings",
    "Profile",
    "ServerName",
    "Zone",
    "bucket_name",
    "get_settings",
]


class PlatformSettings(BaseSettings):
    """Every knob of the platform, read from ``MLSEC_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MLSEC_", extra="ignore")

    # Each field's description is its documentation: the README's configuration table is
    # generated from it (and a test fails when the two disagree).
    profile: Profile = Field(
        Profile.LOCAL,
        description="`local`: the platform starts its own servers; `stack`: addresses and "
        "bootstrap secrets come from the environment.",
    )
    state_dir: Path = Field(
        Path(".mlsec"), description="Where the `local` profile keeps all state."
    )
    bucket_prefix: str = Field("mlsec-", description="Zone buckets are `<prefix><zone>`.")
    s3_region: str = Field("us-east-1", description="Region the S3 clients sign for.")
    s3_user_admin: Literal["iam", "minio"] = Field(
        "iam",
        description="How S3 users and keys are minted: `iam` (SeaweedFS, AWS, Ceph) or `minio` "
        "(MinIO's admin API).",
    )
    warehouse_db: str = Field("warehouse", description="Database of the warehouse and audit log.")
    dagster_db: str = Field("dagster", description="Database of the Dagster instance.")

    # Lifetimes of Vault-issued credentials, in seconds.
    token_ttl: int = Field(3600, description="Lifetime of a workload's Vault token (s).")
    secret_id_ttl: int = Field(
        7 * 24 * 3600,
        description="Lifetime of a workload's AppRole secret_id (s); `mlsec up` re-issues one "
        "past half its life.",
    )
    token_max_ttl: int = Field(4 * 3600, description="Longest a Vault token may be renewed (s).")
    pg_writer_ttl: int = Field(3600, description="Lifetime of a warehouse writer login (s).")
    pg_reader_ttl: int = Field(900, description="Lifetime of a warehouse reader login (s).")
    pg_audit_ttl: int = Field(3600, description="Lifetime of an audit writer login (s).")
    pg_limits_ttl: int = Field(
        3600, description="Lifetime of the broker's shared-limits (counters) login (s)."
    )

    # Ingestion.
    gateway_port: int = Field(8470, description="Port of `mlsec gateway`.")
    gateway_max_file_bytes: int = Field(512 * 1024 * 1024, description="Largest upload.")
    gateway_max_events_bytes: int = Field(64 * 1024 * 1024, description="Largest event batch.")
    gateway_max_concurrent_uploads: int = Field(4, description="Uploads the gateway takes at once.")
    gateway_publish_ack_timeout: float = Field(
        30.0,
        description="How long the gateway waits for JetStream to acknowledge an event of a "
        "batch it publishes before it answers 503 (s).",
    )
    gateway_body_idle_timeout: float = Field(
        30.0,
        description="Longest pause while a request body arrives; a body that stalls longer "
        "is refused with 408 and frees its upload slot (s).",
    )
    gateway_body_deadline: float = Field(
        900.0, description="Longest a request body may take to arrive in all (s)."
    )
    gateway_quarantine_keep_bytes: int = Field(
        1024,
        description="Of a body refused before it is checked (no valid token, unknown source, "
        "over the size cap), only this many first bytes and their SHA-256 are kept.",
    )
    gateway_quarantine_max_bytes_per_hour: int = Field(
        1024 * 1024 * 1024,
        description="Quarantine growth cap: once the gateway has kept this many bytes of "
        "refused input in the current hour, it keeps no more (refusals are still answered "
        "and audited) and logs an alert.",
    )
    upload_token_ttl: int = Field(3600, description="Lifetime of an upload token (s).")
    token_max_lifetime: int = Field(
        3600,
        gt=0,
        description="Longest lifetime (`exp - iat`) of a token the gateway and the broker "
        "accept (s); `mlsec token issue` refuses a longer `--ttl`.",
    )
    nats_ack_wait: float = Field(
        60.0,
        description="How long a fetched event may stay unacknowledged before NATS delivers it "
        "again (s).",
    )
    events_batch_size: int = Field(50_000, description="Events one Raw run takes at most.")

    # Access Broker.
    broker_port: int = Field(8480, description="Port of `mlsec broker`.")
    broker_jwks_url: str | None = Field(
        None,
        description="JWKS of the OIDC provider whose tokens the broker accepts. Unset: the "
        "local issuer (`mlsec token issue`), whose key OpenBao transit holds.",
    )
    broker_issuer: str = Field(
        "mlsec-local", description="Token issuer (`iss`) the broker accepts."
    )
    broker_audience: str = Field("mlsec-broker", description="Token audience (`aud`) it accepts.")
    broker_token_algorithms: tuple[str, ...] = Field(
        ("EdDSA",), description="Signature algorithms it accepts (asymmetric only)."
    )
    broker_cache_bytes: int = Field(
        1 << 30,
        description="Memory for pinned snapshots of curated tables (least recently used leave "
        "first).",
    )
    broker_lineage_ttl: float = Field(
        1.0,
        description="How long the latest materialization of an asset is reused before asking "
        "Dagster again (s).",
    )
    broker_max_concurrent_queries: int = Field(16, description="Queries the broker runs at once.")
    broker_metrics_credential_file: Path | None = Field(
        None,
        description="File holding the bearer credential (16 characters or more) a scraper "
        "sends to the broker's `/metrics` (Prometheus: `authorization.credentials_file`). "
        "Unset: `/metrics` is refused.",
    )
    broker_policy_dir: Path | None = Field(
        None, description="A folder of policy files to use instead of the packaged ones."
    )
    broker_max_body_bytes: int = Field(
        1024 * 1024,
        description="Largest request body the broker reads; a larger one is refused (413) by "
        "its Content-Length before it is read, or as soon as it grows past this.",
    )

    # The request envelope of both HTTP services (broker and gateway).
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description="Addresses or networks of reverse proxies whose X-Forwarded-For the "
        "broker and gateway believe. Empty: a request's client is its socket peer, whatever "
        "its headers say.",
    )
    client_refusal_burst: int = Field(
        50,
        description="Refusals of unauthenticated requests (bad token, unknown route) one client "
        "address may draw before its requests are refused with 429, ahead of authentication. "
        "0: no limit.",
    )
    client_refusal_rate: float = Field(
        1.0, description="Refusals per second a client address earns back."
    )
    audit_fold_window: float = Field(
        0.25,
        description="Identical refusals of unauthenticated requests from one address within "
        "this long (s) are recorded as one audit event carrying their count and first and "
        "last request ids. 0: one event each.",
    )

    # TLS of the broker and the gateway: server certificates from the platform CA (OpenBao
    # PKI), client certificates required (mTLS).
    tls_server_names: tuple[str, ...] = Field(
        ("localhost", "127.0.0.1"),
        description="DNS names and IP addresses the broker's and the gateway's server "
        "certificates are issued for (the first is the subject).",
    )
    tls_server_cert_ttl: int = Field(
        86400,
        gt=60,
        description="Lifetime of a server certificate (s); each service renews its own at "
        "two thirds of it.",
    )
    ca_bundle: Path | None = Field(
        None,
        description="The platform CA's certificate (PEM), which clients trust and client "
        "certificates are checked against; bootstrap writes it. Unset: "
        "`<state_dir>/tls/ca.pem`.",
    )
    # TLS of the four servers. Their clients trust a bundle of their own, not `ca_bundle`:
    # OpenBao's listener certificate comes from a bootstrap CA (OpenBao cannot issue its own
    # before it is up), and that CA must never be trusted for the broker's and the gateway's
    # client certificates, which `ca_bundle` vouches for.
    server_ca_bundle: Path | None = Field(
        None,
        description="CA certificates (PEM) the clients of OpenBao, S3, PostgreSQL and NATS "
        "verify them against. Unset: `<state_dir>/tls/servers-ca.pem`, which the `local` "
        "stack writes (its bootstrap CA and the platform CA).",
    )
    server_ca_files: dict[ServerName, Path] = Field(
        {},
        description="Per server (`vault`, `s3`, `postgres`, `nats`), a CA bundle to use "
        'instead of `server_ca_bundle` (`stack`), e.g. `{"s3": "/etc/ssl/minio-ca.pem"}`.',
    )
    postgres_sslmode: Literal["verify-full", "disable"] = Field(
        "verify-full",
        description="TLS to PostgreSQL (`stack`): `verify-full` (certificate and name checked "
        "against its CA bundle) or `disable` (plaintext, for a private network only). The "
        "embedded server (`local`) serves TLS only, so there it is always `verify-full`.",
    )
    tls_stack_cert_ttl: int = Field(
        30 * 24 * 3600,
        gt=3600,
        description="Lifetime of the servers' certificates (s); `mlsec up` (`local`) or `mlsec "
        "server-certs` (`stack`) renews each past two thirds of it.",
    )

    # Observability: lineage to a receiver or a file, metrics to a scraper.
    openlineage_url: str | None = Field(
        None,
        description="OpenLineage receiver (e.g. Marquez) that materializations and broker "
        "reads are sent to as run events (POST `<url>/api/v1/lineage`). Unset, with no file: "
        "lineage is off (the audit log stays the record).",
    )
    openlineage_file: Path | None = Field(
        None,
        description="File that OpenLineage run events are appended to, one JSON a line "
        "(when no URL is set).",
    )
    metrics_credential_file: Path | None = Field(
        None,
        description="As the broker's, for the gateway's `/metrics` and `mlsec metrics` "
        "(pipeline runs).",
    )

    engine: Literal["duckdb", "spark"] = Field(
        "duckdb", description="Engine of the curated transforms: `duckdb` or `spark`."
    )
    spark_remote: str | None = Field(
        None,
        description="Spark Connect endpoint (`sc://host:port`) of the `spark` engine. Unset: "
        "`mlsec up` starts Sail on loopback with the pipeline's S3 keys (`local`).",
    )
    sail_mode: Literal["local", "local-cluster"] = Field(
        "local",
        description="How the embedded Sail runs: one process, or a driver with workers "
        "(`local-cluster`, `MLSEC_SAIL_WORKERS` of them) talking over loopback RPC.",
    )
    sail_workers: int = Field(2, ge=1, description="Workers of Sail's `local-cluster` mode.")
    committed_cache_bytes: int = Field(
        4 << 30,
        description="Memory a run may use to keep the tables it committed for its own later "
        "steps (0: read everything back from the lake).",
    )
    raw_retention_days: int = Field(
        365, description="Raw batches ingested longer ago than this move to the cold zone."
    )
    delta_history_retention_days: int = Field(
        30,
        ge=0,
        description="How long a curated Delta table keeps older versions readable (its "
        "`delta.logRetentionDuration` and `delta.deletedFileRetentionDuration`, days). An "
        "erasure (`mlsec erase`) cuts the history of every table it changes at once.",
    )

    # `local` profile: preferred ports, replaced by free ones when taken.
    vault_port: int = Field(8200, description="Preferred OpenBao port (`local`).")
    s3_port: int = Field(8333, description="Preferred S3 port (`local`).")
    postgres_port: int = Field(5432, description="PostgreSQL port (preferred, for `local`).")
    nats_port: int = Field(4222, description="Preferred NATS port (`local`).")
    prefer_default_ports: bool = Field(
        True,
        description="Try the ports above first; tests set false so they never meet a running "
        "`mlsec up`.",
    )

    # `stack` profile: addresses and the folder holding bootstrap secrets.
    vault_addr: str | None = Field(None, description="OpenBao or Vault address (`stack`).")
    s3_endpoint: str | None = Field(None, description="S3 endpoint (`stack`).")
    postgres_host: str | None = Field(None, description="PostgreSQL host (`stack`).")
    nats_url: str | None = Field(None, description="NATS URL (`stack`).")
    bootstrap_dir: Path | None = Field(
        None, description="Folder of the bootstrap secrets, e.g. mounted Docker secrets (`stack`)."
    )

    @model_validator(mode="after")
    def _default_ca_bundle(self) -> PlatformSettings:
        if self.ca_bundle is None:
            self.ca_bundle = self.state_dir.resolve() / "tls" / "ca.pem"
        if self.server_ca_bundle is None:
            self.server_ca_bundle = self.state_dir.resolve() / "tls" / "servers-ca.pem"
        return self

    def server_ca(self, server: ServerName) -> Path:
        """The CA bundle clients of ``server`` verify its certificate against."""
        found = self.server_ca_files.get(server) or self.server_ca_bundle
        assert found is not None  # set by the validator
        return found

    def postgres_tls(self) -> dict[str, str]:
        """libpq options of every Postgres connection, stated rather than negotiated: TLS
        with the server's certificate and name verified, or, where ``postgres_sslmode`` says
        `disable` on the `stack` profile, plaintext. The embedded server (`local`) admits TLS
        clients only (``hostssl``), so `local` always verifies."""
        if self.profile is not Profile.LOCAL and self.postgres_sslmode == "disable":
            return {"sslmode": "disable"}
        return {"sslmode": "verify-full", "sslrootcert": str(self.server_ca("postgres"))}

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
