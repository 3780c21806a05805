"""The code location's resources and IO managers, built from the platform settings.

Each writer identity gets its own chain Vault -> audit -> lake, so an asset can only ever hold
the credentials of the identity its IO manager or resource names:

    raw_io_manager        connector identity: landing -> raw
    lakehouse_io_manager  pipeline identity: raw -> silver -> gold -> features
    warehouse             pipeline identity: short-lived Postgres writer
    nats_connector        connector identity: the event stream
    lake_lifecycle        lifecycle identity: raw batches past retention -> cold and back
    tokenization          pipeline identity: the tokenization key version, in memory
    engine                DuckDB (default) or PySpark for the curated transforms
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlsec_platform.privacy.key import TokenizationResource
from mlsec_platform.resources.audit import AuditResource
from mlsec_platform.resources.nats import NatsResource
from mlsec_platform.resources.postgres import PostgresWarehouseResource
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.settings import PlatformSettings, get_settings
from mlsec_platform.storage.delta_s3 import DeltaLakeS3IOManager
from mlsec_platform.transforms.engine import TransformEngine

#: IO manager key -> the identity whose credentials it writes with.
IO_MANAGER_IDENTITIES = {
    "raw_io_manager": "connector",
    "lakehouse_io_manager": "pipeline",
}


def build_resources(settings: PlatformSettings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    endpoints = settings.endpoints()
    resources: dict[str, Any] = {}
    for identity in sorted({*IO_MANAGER_IDENTITIES.values(), "lifecycle"}):
        vault = VaultResource(
            addr=endpoints.vault_addr,
            identity=identity,
            credentials_dir=str(settings.identities_dir),
        )
        audit = AuditResource(
            vault=vault,
            host=endpoints.postgres_host,
            port=endpoints.postgres_port,
            dbname=settings.warehouse_db,
        )
        lake = S3LakeResource(
            vault=vault,
            audit=audit,
            endpoint_url=endpoints.s3_endpoint,
            region=settings.s3_region,
            bucket_prefix=settings.bucket_prefix,
            committed_cache_bytes=settings.committed_cache_bytes,
        )
        resources |= {
            f"vault_{identity}": vault,
            f"audit_{identity}": audit,
            f"lake_{identity}": lake,
        }
    for key, identity in IO_MANAGER_IDENTITIES.items():
        resources[key] = DeltaLakeS3IOManager(lake=resources[f"lake_{identity}"])
    resources["nats_connector"] = NatsResource(
        vault=resources["vault_connector"],
        audit=resources["audit_connector"],
        url=endpoints.nats_url,
    )
    resources["warehouse"] = PostgresWarehouseResource(
        vault=resources["vault_pipeline"],
        audit=resources["audit_pipeline"],
        host=endpoints.postgres_host,
        port=endpoints.postgres_port,
        dbname=settings.warehouse_db,
        role="warehouse-writer",
    )
    resources["tokenization"] = TokenizationResource(
        vault=resources["vault_pipeline"], audit=resources["audit_pipeline"]
    )
    resources["engine"] = TransformEngine(engine=settings.engine)
    return resources


@dg.definitions
def resources() -> dg.Definitions:
    """Vault-backed resources and IO managers for the running stack."""
    return dg.Definitions(resources=build_resources())
