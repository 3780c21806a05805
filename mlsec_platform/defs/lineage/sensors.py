"""OpenLineage for every materialization: a sensor that follows the instance's event log
(``mlsec_platform/telemetry/runs.py`` says what it sends and why a sensor)."""

from __future__ import annotations

import dagster as dg

from mlsec_platform.settings import get_settings
from mlsec_platform.telemetry.datasets import Datasets
from mlsec_platform.telemetry.lineage import LineageEmitter, transport_from_settings
from mlsec_platform.telemetry.runs import LineageCursor, publish_lineage


@dg.sensor(
    name="openlineage_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends every run's OpenLineage events (each asset's output at its Delta "
    "version, the versions it read, column lineage) to MLSEC_OPENLINEAGE_URL or _FILE; "
    "skips while neither is set. A receiver that is down is tried again on the next tick.",
)
def openlineage_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Publish the lineage of the runs that started or ended since the last tick."""
    settings = get_settings()
    transport = transport_from_settings(settings)
    if transport is None:
        return dg.SkipReason("OpenLineage is off (MLSEC_OPENLINEAGE_URL or _FILE)")
    endpoints = settings.endpoints()
    datasets = Datasets.from_settings(
        settings, f"{endpoints.postgres_host}:{endpoints.postgres_port}"
    )
    cursor = LineageCursor.parse(context.cursor)
    emitter = LineageEmitter(transport)
    published = publish_lineage(context.instance, cursor, emitter.send, datasets)
    context.update_cursor(str(cursor))
    failed = emitter.count("failed")
    note = f"; the receiver refused or missed {int(failed)}, sent again next tick" if failed else ""
    return dg.SkipReason(f"lineage of {published} run status changes sent{note}")


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[openlineage_sensor])
