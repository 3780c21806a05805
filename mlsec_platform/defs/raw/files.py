"""The official file connector: landing objects -> one Raw Delta table per source.

One ``raw/<source>`` asset per contract in ``catalog/sources.py``, generated when the code
location loads: a new contract needs no change here.

The gateway puts accepted uploads under ``incoming/<source>/<batch>.csv`` in the landing
bucket. ``landing_files_sensor`` sees each new object, adds it as a dynamic partition of its
source and launches a run of ``raw/<source>``. The run checks the object again (checksum and
contract), commits it to Raw, and only then moves it to ``processed/``.
"""

import hashlib
import json
from collections.abc import Iterable

import dagster as dg
from botocore.exceptions import ClientError

from mlsec_platform.catalog.sources import FILE_SOURCES, SourceContract
from mlsec_platform.errors import MlsecError
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.sources.validation import Rejected, check_required, read_csv
from mlsec_platform.storage import quarantine
from mlsec_platform.storage.raw_writer import (
    Lineage,
    batch_with_content,
    commit_raw_batch,
    open_table,
)

CONNECTOR = "landing_files"
CONNECTOR_VERSION = "1.0.0"


class QuarantinedBatch(MlsecError):
    """A landing batch failed its checks at ingestion; it was moved to quarantine."""


def partitions_for(source: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{source}_batches")


def _fetch_landing(s3, bucket: str, source: str, batch: str) -> tuple[str, dict]:
    """The batch object, from incoming/ or, if a previous run moved it already, processed/."""
    for folder in ("incoming", "processed"):
        key = f"{folder}/{source}/{batch}.csv"
        try:
            return key, s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
    raise dg.Failure(f"landing batch {source}/{batch} not found in incoming/ or processed/")


def raw_file_asset(contract: SourceContract) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", contract.name],
        partitions_def=partitions_for(contract.name),
        group_name="raw",
        code_version=CONNECTOR_VERSION,
        kinds={"delta", "s3"},
        tags={"zone": "raw", "connector": CONNECTOR, "domain": contract.domain},
        metadata={"contract_version": contract.version, "connector": CONNECTOR},
        description=(
            f"Raw {contract.name}: {contract.description} Immutable, one Delta commit per "
            f"landing batch with lineage columns; written by the `connector` identity."
        ),
    )
    def _raw(context: dg.AssetExecutionContext, lake_connector: S3LakeResource):
        batch = context.partition_key
        s3 = lake_connector.client()
        landing = lake_connector.bucket(Zone.LANDING)
        key, obj = _fetch_landing(s3, landing, contract.name, batch)
        body = obj["Body"].read()
        meta = obj.get("Metadata", {})
        digest = hashlib.sha256(body).hexdigest()
        try:
            if meta.get("sha256") != digest:
                raise Rejected(422, "landing object changed after it was accepted (sha256)")
            # Byte for byte what the gateway validated (and neutralized): parse, recheck keys.
            table = read_csv(body, contract)
            check_required(table, contract)
        except Rejected as exc:
            _quarantine(lake_connector, s3, contract.name, batch, key, body, exc.reason)
            raise QuarantinedBatch(f"{contract.name}/{batch}: {exc.reason}") from None

        raw_table = open_table(
            lake_connector.table_uri(Zone.RAW, contract.name), lake_connector.storage_options()
        )
        duplicate_of = batch_with_content(raw_table, digest)
        if duplicate_of is not None and duplicate_of != batch:
            # The same file uploaded again: nothing new to ingest.
            _move_to_processed(s3, landing, key)
            lake_connector.audit.emit(
                "raw.duplicate_batch",
                {
                    "source": contract.name,
                    "batch_id": batch,
                    "duplicate_of": duplicate_of,
                    "sha256": digest,
                },
            )
            context.log.warning(f"{contract.name}/{batch} has the content of {duplicate_of}")
            return dg.MaterializeResult(
                metadata={
                    "rows": 0,
                    "dagster/row_count": 0,
                    "duplicate_of": duplicate_of,
                    "sha256": digest,
                    "batch_id": batch,
                    "connector": CONNECTOR,
                    "connector_version": CONNECTOR_VERSION,
                },
            )
        commit = commit_raw_batch(
            lake_connector,
            table,
            Lineage(
                source=contract.name,
                connector=CONNECTOR,
                connector_version=CONNECTOR_VERSION,
                batch_id=batch,
                received_at=meta.get("received-at", ""),
                sha256=digest,
            ),
            run_id=context.run.run_id,
            table=raw_table,
        )
        _move_to_processed(s3, landing, key)
        lake_connector.audit.emit(
            "raw.committed",
            {
                "source": contract.name,
                "batch_id": batch,
                "rows": commit.rows,
                "delta_version": commit.version,
                "already_committed": commit.already_committed,
                "connector": CONNECTOR,
                "connector_version": CONNECTOR_VERSION,
                "sha256": digest,
            },
        )
        return dg.MaterializeResult(
            metadata={
                **commit.metadata(),
                "sha256": digest,
                "batch_id": batch,
                "uploader": meta.get("uploader", ""),
                "connector": CONNECTOR,
                "connector_version": CONNECTOR_VERSION,
                "contract_version": contract.version,
            },
            data_version=dg.DataVersion(str(commit.version)),
        )

    return _raw


def _move_to_processed(s3, landing: str, key: str) -> None:
    """Landing object -> processed/, only ever after its batch is safely in Raw."""
    if not key.startswith("incoming/"):
        return  # a re-run: already moved
    processed = key.replace("incoming/", "processed/", 1)
    s3.copy_object(
        Bucket=landing,
        Key=processed,
        CopySource={"Bucket": landing, "Key": key},
        MetadataDirective="COPY",
    )
    s3.delete_object(Bucket=landing, Key=key)


def _quarantine(
    lake: S3LakeResource, s3, source: str, batch: str, key: str, body: bytes, reason: str
):
    record = {"source": source, "batch_id": batch, "landing_key": key, "reason": reason}
    quarantine.keep(
        lake,
        stage="connector",
        kind="file",
        name=source,
        entry_id=batch,
        payload=body,
        record=record,
    )
    landing = lake.bucket(Zone.LANDING)
    s3.delete_object(Bucket=landing, Key=key)
    lake.audit.emit(
        "ingest.rejected",
        {"kind": "file", "name": source, "batch_id": batch, "reason": reason, "stage": "connector"},
    )


def raw_file_assets() -> dict[str, dg.AssetsDefinition]:
    """One Raw connector asset per file source, as the contract registry is now."""
    return {name: raw_file_asset(contract) for name, contract in FILE_SOURCES.items()}


def ingest_job_name(source: str) -> str:
    """The job a source's batch runs as: named, so the runs list and its filters say which
    source each run ingested (a sensor targeting assets would launch ``__ASSET_JOB`` runs)."""
    return f"ingest_{source}"


def raw_file_jobs(assets: Iterable[dg.AssetsDefinition]) -> list:
    """One (unresolved) job per file source: each source's asset has its own dynamic
    partitions, and a job runs assets of one partitioning."""
    return [
        dg.define_asset_job(
            ingest_job_name(asset.key.path[-1]),
            selection=[asset.key],
            description=f"One landing batch of {asset.key.path[-1]} into Raw (a Delta commit).",
            tags={"mlsec/connector": CONNECTOR},
        )
        for asset in assets
    ]


def landing_files_sensor_for(assets: Iterable[dg.AssetsDefinition]) -> dg.SensorDefinition:
    """The landing sensor, allowed to launch the ingest job of each of ``assets``."""

    @dg.sensor(
        name="landing_files_sensor",
        minimum_interval_seconds=10,
        jobs=raw_file_jobs(assets),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="New landing uploads -> a dynamic partition and a run of their raw asset.",
    )
    def landing_files_sensor(
        context: dg.SensorEvaluationContext, lake_connector: S3LakeResource
    ) -> dg.SensorResult:
        return landing_sensor_result(lake_connector)

    return landing_files_sensor


def landing_sensor_result(lake: S3LakeResource) -> dg.SensorResult:
    """The partitions to add and runs to launch for every object waiting in incoming/.

    Objects leave incoming/ once committed, so the listing stays short; a batch seen twice is
    launched once (its run key is the batch id, and Dagster skips run keys it has seen).
    """
    s3 = lake.client()
    bucket = lake.bucket(Zone.LANDING)
    partition_requests, run_requests = [], []
    waiting = 0
    for source in FILE_SOURCES:
        prefix = f"incoming/{source}/"
        batches = [
            obj["Key"][len(prefix) : -len(".csv")]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        if not batches:
            continue
        waiting += len(batches)
        partition_requests.append(partitions_for(source).build_add_request(batches))
        run_requests += [
            dg.RunRequest(
                run_key=f"{source}:{batch}",
                job_name=ingest_job_name(source),
                asset_selection=[dg.AssetKey(["raw", source])],
                partition_key=batch,
                tags={"mlsec/connector": CONNECTOR, "mlsec/source": source},
            )
            for batch in batches
        ]
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps({"waiting": waiting}),
    )


#: The assets and sensor as registered at import, for the operator commands that run them in
#: process; the code location builds them anew from the registry (``defs``).
RAW_FILE_ASSETS = raw_file_assets()
landing_files_sensor = landing_files_sensor_for(RAW_FILE_ASSETS.values())


@dg.definitions
def defs() -> dg.Definitions:
    assets = raw_file_assets()
    # The sensor's ingest jobs are registered with it.
    return dg.Definitions(
        assets=list(assets.values()), sensors=[landing_files_sensor_for(assets.values())]
    )
