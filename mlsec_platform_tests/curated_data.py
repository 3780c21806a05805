"""One Raw data set (100k generated orders and their events), curated once per session.

Loaded for the whole session by the root ``conftest.py`` (``pytest_plugins``), so every test
package that needs curated data (the curated zones' tests, the broker's) shares this one
materialization: Raw tables are shared by the session stack, a second seed would double them.

Raw is written by the connector's own writer with the connector identity (the ingestion path
itself is covered by the raw tests); then the `curated` job runs on the stack's own Dagster
instance (Postgres storage, the orchestrator's login), which the tests query for
materializations, checks and lineage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pytest

from mlsec_platform.catalog.sources import EVENT_DOMAINS
from mlsec_platform.defs.raw import events as event_connector
from mlsec_platform.defs.raw import files as file_connector
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.sample_data.events import order_status_events
from mlsec_platform.sample_data.olist import OlistDataset, generate
from mlsec_platform.settings import Endpoints, PlatformSettings
from mlsec_platform.stack.orchestrator import dagster_login
from mlsec_platform.storage.raw_writer import Lineage, commit_raw_batch, with_stream_columns

ORDERS = 100_000
SEED = 23


@dataclass
class Curated:
    dataset: OlistDataset
    resources: dict
    instance: dg.DagsterInstance
    result: dg.ExecuteInJobResult
    batches: dict[str, str]


def seed_raw(resources: dict, dataset: OlistDataset, tag: str) -> dict[str, str]:
    """Commit every table of ``dataset`` (and its events) to Raw; source -> batch id."""
    lake = resources["lake_connector"]
    now = datetime.now(UTC).isoformat()
    batches = {}
    for source, table in dataset.tables.items():
        batch = f"{tag}-{source}"
        digest = hashlib.sha256(f"{tag}/{source}".encode()).hexdigest()
        commit_raw_batch(
            lake,
            table,
            Lineage(
                source,
                file_connector.CONNECTOR,
                file_connector.CONNECTOR_VERSION,
                batch,
                now,
                digest,
            ),
            run_id=None,
        )
        batches[source] = batch
    contract = EVENT_DOMAINS["order_status"]
    events = with_stream_columns(
        pa.Table.from_pylist(list(order_status_events(dataset)), schema=contract.raw_schema()), now
    )
    batch = f"{tag}-events"
    commit_raw_batch(
        lake,
        events,
        Lineage(
            contract.source,
            event_connector.CONNECTOR,
            event_connector.CONNECTOR_VERSION,
            batch,
            now,
            "0" * 64,
        ),
        run_id=None,
    )
    batches[contract.source] = batch
    return batches


def run_curated(resources: dict, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInJobResult:
    from mlsec_platform.definitions import defs

    job = defs().resolve_job_def("curated")
    # The code location's own resources (built from the same settings as `resources`).
    return job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)


def stack_instance(
    settings: PlatformSettings, endpoints: Endpoints, folder: str
) -> dg.DagsterInstance:
    """The stack's Dagster instance (Postgres storage, as in ``dagster.yaml``), with the login
    the ``orchestrator`` identity reads; kept in memory, never exported or written."""
    login = dagster_login(settings)
    database = {
        "hostname": endpoints.postgres_host,
        "port": endpoints.postgres_port,
        "db_name": settings.dagster_db,
        "username": login["username"],
        "password": login["password"],
        "scheme": "postgresql+psycopg2",
    }
    return dg.DagsterInstance.local_temp(
        folder,
        overrides={
            "storage": {"postgres": {"postgres_db": database}},
            "telemetry": {"enabled": False},
        },
    )


@pytest.fixture(scope="session")
def curated(settings, supervisor, endpoints, tmp_path_factory) -> Iterator[Curated]:
    resources = build_resources(settings)
    dataset = generate(seed=SEED, orders=ORDERS)
    batches = seed_raw(resources, dataset, "curated")
    instance = stack_instance(settings, endpoints, str(tmp_path_factory.mktemp("dagster")))
    try:
        result = run_curated(resources, instance)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        yield Curated(dataset, resources, instance, result, batches)
    finally:
        instance.dispose()
