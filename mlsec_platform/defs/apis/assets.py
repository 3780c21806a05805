"""API connectors: BCB SGS 433 (IPCA) and OpenWeather current weather, into Raw on a schedule.

Both run as the `connector` identity and commit one Delta batch per call with lineage columns;
the batch id is derived from what was asked (the date window, the hour), so a re-run of the
same call writes nothing twice. Schedules are created stopped: start them in the Dagster UI
(OpenWeather needs its key in OpenBao first).
"""

import hashlib
import json
from datetime import UTC, date, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.resources.vault import VaultSecretNotFound
from mlsec_platform.settings import Zone
from mlsec_platform.sources.apis import bcb, openweather
from mlsec_platform.sources.apis.http import ApiClient
from mlsec_platform.storage.raw_writer import Lineage, commit_raw_batch, open_table

BCB_SOURCE = f"bcb_sgs_{bcb.SERIES_IPCA}"
OPENWEATHER_SOURCE = "openweather_current"


class ApiClientsResource(dg.ConfigurableResource):
    """Builds the HTTPS clients of the outside-world APIs (tests swap in recorded responses)."""

    def bcb(self) -> ApiClient:
        return bcb.make_client()

    def openweather(self) -> ApiClient:
        return openweather.make_client()


def _checksum(table: pa.Table) -> str:
    return hashlib.sha256(json.dumps(table.to_pylist(), sort_keys=True).encode()).hexdigest()


def _result(commit, rows: int, **metadata) -> dg.MaterializeResult:
    if commit is None:
        return dg.MaterializeResult(metadata={"rows": 0, "dagster/row_count": 0, **metadata})
    return dg.MaterializeResult(
        metadata={**commit.metadata(), **metadata},
        data_version=dg.DataVersion(str(commit.version)),
    )


def _commit(
    lake: S3LakeResource,
    source: str,
    connector: tuple[str, str],
    batch: str,
    data: pa.Table,
    run_id: str,
    table=None,
):
    commit = commit_raw_batch(
        lake,
        data,
        Lineage(
            source=source,
            connector=connector[0],
            connector_version=connector[1],
            batch_id=batch,
            received_at=datetime.now(UTC).isoformat(),
            sha256=_checksum(data),
        ),
        run_id=run_id,
        table=table,
    )
    lake.audit.emit(
        "raw.committed",
        {
            "source": source,
            "batch_id": batch,
            "rows": commit.rows,
            "delta_version": commit.version,
            "connector": connector[0],
            "connector_version": connector[1],
        },
    )
    return commit


@dg.asset(
    key=["raw", BCB_SOURCE],
    group_name="raw",
    code_version=bcb.CONNECTOR[1],
    kinds={"delta", "s3", "api"},
    tags={"zone": "raw", "connector": bcb.CONNECTOR[0], "domain": "macro"},
)
def bcb_sgs_433(
    context: dg.AssetExecutionContext,
    lake_connector: S3LakeResource,
    api_clients: ApiClientsResource,
) -> dg.MaterializeResult:
    """IPCA monthly % change (BCB SGS series 433), loaded incrementally by date.

    Each run asks only for the days after the last date already in Raw.
    """
    table = open_table(
        lake_connector.table_uri(Zone.RAW, BCB_SOURCE), lake_connector.storage_options()
    )
    last = None
    if table is not None:
        dates = table.to_pyarrow_table(columns=["reference_date"]).column(0)
        last = date.fromisoformat(pc.max(dates).as_py()) if len(dates) else None
    window = bcb.next_window(last, date.today())
    if window is None:
        return _result(None, 0, up_to_date=True)
    client = api_clients.bcb()
    try:
        data = bcb.fetch_series(client, bcb.SERIES_IPCA, *window)
    finally:
        client.close()
    context.log.info(f"SGS 433 {window[0]}..{window[1]}: {data.num_rows} new values")
    if data.num_rows == 0:
        return _result(None, 0, window=f"{window[0]}..{window[1]}")
    batch = f"sgs433-{window[0]:%Y%m%d}-{window[1]:%Y%m%d}"
    commit = _commit(
        lake_connector, BCB_SOURCE, bcb.CONNECTOR, batch, data, context.run.run_id, table
    )
    return _result(commit, data.num_rows, window=f"{window[0]}..{window[1]}")


class OpenWeatherConfig(dg.Config):
    cities: list[str] = [f"{city},{country}" for city, country in openweather.DEFAULT_CITIES]


@dg.asset(
    key=["raw", OPENWEATHER_SOURCE],
    group_name="raw",
    code_version=openweather.CONNECTOR[1],
    kinds={"delta", "s3", "api"},
    tags={"zone": "raw", "connector": openweather.CONNECTOR[0], "domain": "weather"},
)
def openweather_current(
    context: dg.AssetExecutionContext,
    config: OpenWeatherConfig,
    lake_connector: S3LakeResource,
    api_clients: ApiClientsResource,
) -> dg.MaterializeResult:
    """Current weather of the configured cities (OpenWeather), one batch per hour.

    The API key is read from OpenBao (`mlsec/connectors/openweather`, field `api_key`) at run
    time; without it the run fails with a message saying where to put it.
    """
    try:
        key = lake_connector.vault.read_kv(openweather.VAULT_PATH).get(openweather.VAULT_FIELD)
        lake_connector.audit.secret_read(f"mlsec/{openweather.VAULT_PATH}", purpose="api-key")
    except VaultSecretNotFound:
        key = None
    cities = [tuple(c.rsplit(",", 1)) for c in config.cities]
    client = api_clients.openweather()
    try:
        data = openweather.fetch_current(client, key, cities)
    finally:
        client.close()
    batch = f"owm-{datetime.now(UTC):%Y%m%dT%H}"
    commit = _commit(
        lake_connector, OPENWEATHER_SOURCE, openweather.CONNECTOR, batch, data, context.run.run_id
    )
    return _result(commit, data.num_rows, cities=len(cities))


bcb_daily = dg.ScheduleDefinition(
    name="bcb_sgs_433_daily",
    target=bcb_sgs_433,
    cron_schedule="0 9 * * *",
    execution_timezone="America/Sao_Paulo",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
openweather_hourly = dg.ScheduleDefinition(
    name="openweather_current_hourly",
    target=openweather_current,
    cron_schedule="5 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[bcb_sgs_433, openweather_current],
        schedules=[bcb_daily, openweather_hourly],
        resources={"api_clients": ApiClientsResource()},
    )
