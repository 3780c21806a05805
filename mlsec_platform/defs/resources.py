"""The code location's resources and IO managers, built from the platform settings.

Each writer identity gets its own chain Vault -> audit -> lake, so an asset can only ever hold
the credentials of the identity its IO manager or resource names:

    raw_io_manager        connector identity: landing -> raw
    lakehouse_io_manager  pipeline identity: raw -> silver -> gold -> features
    warehouse             pipeline identity: short-lived Postgres writer
    nats_connector        connector identity: the event stream
    lake_lifecycle        lifecycle identity: raw batches past retention -> cold and back
    token_vault           pipeline identity: the token vault, an index key and data keys per batch
    engine                DuckDB (default) or PySpark for the curated transforms

The code location loads with no stack running: its resources leave the server addresses unset,
and each resource takes the running stack's when a run or a sensor sets it up
(``resources/running_stack.py``). Code that uses resources outside a run (the `mlsec` commands,
tests, benchmarks) calls :func:`build_resources`, which names the stack running now.

Each code location (``mlsec_platform/locations``) wires only the identities it runs as
(``identities=``): the curation location has no connector or lifecycle resource, so no asset in
it can ask for their keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlsec_platform.resources.identity import identity_resources
from mlsec_platform.resources.nats import NatsResource
from mlsec_platform.resources.postgres import PostgresWarehouseResource
from mlsec_platform.settings import Endpoints, PlatformSettings, get_settings
from mlsec_platform.storage.delta_s3 import DeltaLakeS3IOManager
from mlsec_platform.storage.token_vault_resource import TokenVaultResource
from mlsec_platform.transforms.engine import TransformEngine

#: IO manager key -> the identity whose credentials it writes with.
IO_MANAGER_IDENTITIES = {
    "raw_io_manager": "connector",
    "lakehouse_io_manager": "pipeline",
}


#: Every writer identity a code location may run as.
WRITER_IDENTITIES = frozenset({*IO_MANAGER_IDENTITIES.values(), "lifecycle"})


def build_resources(
    settings: PlatformSettings | None = None, identities: Iterable[str] = WRITER_IDENTITIES
) -> dict[str, Any]:
    """The resources on the stack running now, for use outside a run as well as in one.
    Raises ConfigurationError when no stack runs."""
    settings = settings or get_settings()
    return wire_resources(settings, settings.endpoints(), identities)


def wire_resources(
    settings: PlatformSettings,
    endpoints: Endpoints | None,
    identities: Iterable[str] = WRITER_IDENTITIES,
) -> dict[str, Any]:
    """The resources of ``identities``, wired identity by identity. With ``endpoints`` None,
    each resource takes the running stack's addresses when a run sets it up."""
    identities = frozenset(identities)
    if unknown := identities - WRITER_IDENTITIES:
        raise ValueError(f"not a writer identity: {', '.join(sorted(unknown))}")
    resources: dict[str, Any] = {}
    for identity in sorted(identities):
        chain = identity_resources(settings, identity, endpoints)
        resources |= {
            f"vault_{identity}": chain.vault,
            f"audit_{identity}": chain.audit,
            f"lake_{identity}": chain.lake,
        }
    for key, identity in IO_MANAGER_IDENTITIES.items():
        if identity in identities:
            resources[key] = DeltaLakeS3IOManager(
                lake=resources[f"lake_{identity}"],
                # Curated tables keep the configured history; Raw keeps its whole log.
                history_retention_days=(
                    settings.delta_history_retention_days if identity == "pipeline" else None
                ),
            )
    if "connector" in identities:
        resources["nats_connector"] = NatsResource(
            vault=resources["vault_connector"],
            audit=resources["audit_connector"],
            url=endpoints.nats_url if endpoints else None,
        )
    if "pipeline" in identities:
        resources |= _curation_resources(
            settings,
            endpoints,
            resources["vault_pipeline"],
            resources["audit_pipeline"],
            resources["lake_pipeline"],
        )
    return resources


def _curation_resources(
    settings: PlatformSettings, endpoints: Endpoints | None, vault: Any, audit: Any, lake: Any
) -> dict[str, Any]:
    """What curation adds to the pipeline identity's chain: warehouse, token vault, engine."""
    warehouse = PostgresWarehouseResource(
        vault=vault,
        audit=audit,
        host=endpoints.postgres_host if endpoints else None,
        port=endpoints.postgres_port if endpoints else None,
        dbname=settings.warehouse_db,
        role="warehouse-writer",
    )
    return {
        "warehouse": warehouse,
        "token_vault": TokenVaultResource(lake=lake, warehouse=warehouse),
        "engine": TransformEngine(engine=settings.engine),
    }
