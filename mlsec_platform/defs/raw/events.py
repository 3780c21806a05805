"""The official event connector: JetStream subject ``raw.<domain>.ingest`` -> Raw Delta table.

``nats_events_sensor`` watches each domain's durable consumer; when events wait and no run of
that domain is in flight, it adds a batch partition and launches ``raw/events_<domain>``.

A run fetches the messages waiting when it starts, up to ``events_batch_size``, drops those
whose ``event_id`` is already in Raw, quarantines invalid ones, commits the rest in one Delta
commit and only then acknowledges. Killed before the commit, nothing is written and NATS
redelivers after the ack wait; killed after it, the redelivered events are recognised by id.
Nothing is lost or doubled.
"""

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from mlsec_platform.catalog.sources import EVENT_DOMAINS, EventContract
from mlsec_platform.resources.nats import NatsResource
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone, get_settings
from mlsec_platform.sources import event_stream
from mlsec_platform.sources.validation import Rejected, validate_event
from mlsec_platform.storage import quarantine
from mlsec_platform.storage.raw_writer import Lineage, RawCommit, commit_raw_batch, open_table
from mlsec_platform.transforms.duck import run_sql

CONNECTOR = "nats_events"
CONNECTOR_VERSION = "1.0.0"
FETCH_SIZE = 5000


@dataclass
class EventBatchResult:
    fetched: int = 0
    committed_rows: int = 0
    duplicates: int = 0
    quarantined: int = 0
    commit: RawCommit | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def committed_event_ids(
    lake: S3LakeResource, source: str, candidates: list[str]
) -> tuple[set[str], object]:
    """Which of ``candidates`` Raw already holds, and the open table for the commit.

    Raw's ids are matched against the batch's in DuckDB, a scan of one column; they never
    become Python objects: Raw holds every event ever accepted (millions at 1M orders), and a
    set of them all cost seconds and hundreds of MB per batch, growing with the table.
    """
    table = open_table(lake.table_uri(Zone.RAW, source), lake.storage_options())
    if table is None or not candidates:
        return set(), table
    found = run_sql(
        "SELECT event_id FROM raw WHERE event_id IN (SELECT event_id FROM batch)",
        raw=table.to_pyarrow_dataset(),
        batch=pa.table({"event_id": pa.array(candidates, pa.string())}),
    )
    return set(found.column(0).to_pylist()), table


async def _consume(
    lake: S3LakeResource,
    nats: NatsResource,
    contract: EventContract,
    batch_id: str,
    max_events: int,
    run_id: str | None,
) -> EventBatchResult:
    result = EventBatchResult()
    nc = await event_stream.connect(nats.url, nats.credentials())
    try:
        durable = event_stream.durable_name(contract.domain)
        t1 = time.perf_counter()
        messages = []
        while len(messages) < max_events:
            asked = min(FETCH_SIZE, max_events - len(messages))
            got = await event_stream.pull_batch(nc, event_stream.STREAM, durable, asked)
            messages += got
            # Fewer than asked: what waited is in; later events go to the next batch (pulling
            # on held the first ones while a steady stream filled it: 50 s at 1,000/s).
            if len(got) < asked:
                break
        result.fetched = len(messages)
        result.seconds["fetch"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        fields = list(contract.fields)
        valid, rejects = [], []
        for msg in messages:
            try:
                event = orjson.loads(msg.data)
                validate_event(event, contract)
            except (Rejected, orjson.JSONDecodeError) as exc:
                rejects.append((msg, getattr(exc, "reason", "malformed JSON")))
                continue
            valid.append((msg, event))
        result.seconds["validate"] = time.perf_counter() - t2

        t0 = time.perf_counter()
        seen, table = committed_event_ids(
            lake, contract.source, [event["event_id"] for _, event in valid]
        )
        result.seconds["dedupe_index"] = time.perf_counter() - t0

        columns: dict[str, list] = {name: [] for name in fields}
        sequences, timestamps, hashes = [], [], []
        for msg, event in valid:
            event_id = event["event_id"]
            if event_id in seen:  # already in Raw, or twice in this batch
                result.duplicates += 1
                continue
            seen.add(event_id)
            for name in fields:
                value = event.get(name)
                if value is not None and not isinstance(value, str):
                    value = str(value)  # Raw keeps text
                columns[name].append(value)
            sequence, timestamp = _stream_position(msg)
            sequences.append(sequence)
            timestamps.append(timestamp)
            hashes.append(hashlib.sha256(msg.data).hexdigest())
        keep = [msg for msg, _ in valid]

        if rejects:
            _quarantine_events(lake, contract, batch_id, rejects)
            for msg, _ in rejects:
                await msg.term()
            result.quarantined = len(rejects)

        rows = len(sequences)
        if rows:
            t3 = time.perf_counter()
            received = pc.strftime(
                pa.array(timestamps, pa.timestamp("ns", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ"
            )
            data = pa.table(
                {
                    **{n: pa.array(v, pa.string()) for n, v in columns.items()},
                    "_stream_seq": pa.array(sequences, pa.int64()).cast(pa.string()),
                    "_nats_received_at": received,
                }
            )
            result.commit = commit_raw_batch(
                lake,
                data,
                Lineage(
                    source=contract.source,
                    connector=CONNECTOR,
                    connector_version=CONNECTOR_VERSION,
                    # Named after its content, not only the run: a re-run of the same partition
                    # that pulls new events must commit them, never mistake them for done.
                    batch_id=f"{batch_id}.{min(sequences)}-{max(sequences)}",
                    received_at=received[0].as_py(),
                    sha256=pa.array(hashes, pa.string()),
                ),
                run_id=run_id,
                table=table,
            )
            result.committed_rows = rows
            result.seconds["commit"] = time.perf_counter() - t3

        # Only now, with the batch durable in Raw, are the messages acknowledged.
        t4 = time.perf_counter()
        for msg in keep:
            await msg.ack()
        await nc.flush()
        result.seconds["ack"] = time.perf_counter() - t4
    finally:
        await nc.close()
    return result


def _stream_position(msg) -> tuple[int, int]:
    """(stream sequence, timestamp ns) from the ack subject, without nats-py's slower parser.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (9 tokens), or the
    12-token form with domain and account hash in front and a random token at the end.
    """
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[7])
    if len(tokens) >= 11:
        return int(tokens[7]), int(tokens[9])
    meta = msg.metadata
    return meta.sequence.stream, int(meta.timestamp.timestamp() * 1e9)


def ingest_event_batch(
    lake: S3LakeResource,
    nats: NatsResource,
    contract: EventContract,
    batch_id: str,
    *,
    max_events: int,
    run_id: str | None = None,
) -> EventBatchResult:
    return asyncio.run(_consume(lake, nats, contract, batch_id, max_events, run_id))


def _quarantine_events(lake: S3LakeResource, contract, batch_id: str, rejects) -> None:
    lines = [
        json.dumps(
            {
                "reason": reason,
                "stream_seq": msg.metadata.sequence.stream,
                "payload": msg.data.decode("utf-8", errors="replace"),
            }
        )
        for msg, reason in rejects
    ]
    record = {"batch_id": batch_id, "events": len(rejects), "reason": rejects[0][1]}
    payload = "\n".join(lines).encode()
    quarantine.keep(
        lake,
        stage="connector",
        kind="events",
        name=contract.domain,
        entry_id=batch_id,
        payload=payload,
        record=record,
    )
    lake.audit.emit(
        "ingest.rejected",
        {
            "kind": "events",
            "name": contract.domain,
            "batch_id": batch_id,
            "stage": "connector",
            "events": len(rejects),
            "reason": rejects[0][1],
        },
    )


def partitions_for(contract: EventContract) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{contract.source}_batches")


def raw_events_asset(contract: EventContract) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", contract.source],
        partitions_def=partitions_for(contract),
        group_name="raw",
        code_version=CONNECTOR_VERSION,
        kinds={"delta", "s3", "nats"},
        tags={"zone": "raw", "connector": CONNECTOR, "domain": contract.domain},
        metadata={"contract_version": contract.version, "subject": contract.subject},
        pool=f"nats-{contract.domain}",
        description=(
            f"Raw {contract.domain} events: {contract.description} One Delta commit per batch "
            f"pulled from JetStream, deduplicated by event_id; written by `connector`."
        ),
    )
    def _raw(
        context: dg.AssetExecutionContext,
        lake_connector: S3LakeResource,
        nats_connector: NatsResource,
    ):
        result = ingest_event_batch(
            lake_connector,
            nats_connector,
            contract,
            context.partition_key,
            max_events=get_settings().events_batch_size,
            run_id=context.run.run_id,
        )
        commit = result.commit
        lake_connector.audit.emit(
            "raw.committed",
            {
                "source": contract.source,
                "batch_id": context.partition_key,
                "rows": result.committed_rows,
                "duplicates": result.duplicates,
                "quarantined": result.quarantined,
                "delta_version": commit.version if commit else None,
                "connector": CONNECTOR,
                "connector_version": CONNECTOR_VERSION,
            },
        )
        metadata = {
            "fetched": result.fetched,
            "rows": result.committed_rows,
            "dagster/row_count": result.committed_rows,
            "duplicates_dropped": result.duplicates,
            "quarantined": result.quarantined,
            "connector": CONNECTOR,
            "connector_version": CONNECTOR_VERSION,
            "contract_version": contract.version,
            "batch_id": context.partition_key,
        }
        if commit is not None:
            metadata |= commit.metadata()
        return dg.MaterializeResult(
            metadata=metadata,
            data_version=dg.DataVersion(str(commit.version)) if commit else None,
        )

    return _raw


RAW_EVENT_ASSETS = {domain: raw_events_asset(c) for domain, c in EVENT_DOMAINS.items()}


def pending_events(nats: NatsResource, domain: str) -> int:
    """Events waiting in the domain's durable consumer (not yet delivered or not yet acked)."""

    async def info() -> int:
        nc = await event_stream.connect(nats.url, nats.credentials())
        try:
            consumer = await nc.jetstream().consumer_info(
                event_stream.STREAM, event_stream.durable_name(domain)
            )
            return consumer.num_pending + consumer.num_ack_pending + consumer.num_redelivered
        finally:
            await nc.close()

    return asyncio.run(info())


def ingest_events_job_name(domain: str) -> str:
    """The job a domain's event batch runs as (named, as file batches' are)."""
    return f"ingest_{domain}_events"


#: One job per event domain: each domain's asset has its own dynamic partitions.
RAW_EVENT_JOBS = [
    dg.define_asset_job(
        ingest_events_job_name(domain),
        selection=[RAW_EVENT_ASSETS[domain].key],
        description=f"One batch of {domain} events from JetStream into Raw (a Delta commit).",
        tags={"mlsec/connector": CONNECTOR},
    )
    for domain in EVENT_DOMAINS
]


#: 5 s, the sensor daemon's own loop (it looks no more often): a tick is one JetStream
#: consumer-info round trip and one runs query, cheap enough to make at every loop. A batch
#: run already under way holds the next one back, so a short interval adds no runs, only
#: takes the events waiting when a run ends sooner.
EVENTS_SENSOR_INTERVAL_SECONDS = 5


@dg.sensor(
    name="nats_events_sensor",
    minimum_interval_seconds=EVENTS_SENSOR_INTERVAL_SECONDS,
    jobs=RAW_EVENT_JOBS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Events waiting on JetStream -> a batch partition and a run of the raw asset.",
)
def nats_events_sensor(
    context: dg.SensorEvaluationContext, nats_connector: NatsResource
) -> dg.SensorResult:
    partition_requests, run_requests = [], []
    for domain, contract in EVENT_DOMAINS.items():
        in_flight = context.instance.get_runs(
            filters=dg.RunsFilter(
                tags={"mlsec/connector": CONNECTOR, "mlsec/domain": domain},
                statuses=[
                    dg.DagsterRunStatus.QUEUED,
                    dg.DagsterRunStatus.NOT_STARTED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                ],
            ),
            limit=1,
        )
        if in_flight or not pending_events(nats_connector, domain):
            continue
        batch = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{domain}-{uuid.uuid4().hex[:8]}"
        partition_requests.append(partitions_for(contract).build_add_request([batch]))
        run_requests.append(
            dg.RunRequest(
                run_key=batch,
                job_name=ingest_events_job_name(domain),
                asset_selection=[dg.AssetKey(["raw", contract.source])],
                partition_key=batch,
                tags={"mlsec/connector": CONNECTOR, "mlsec/domain": domain},
            )
        )
    return dg.SensorResult(
        run_requests=run_requests, dynamic_partitions_requests=partition_requests
    )


@dg.definitions
def defs() -> dg.Definitions:
    # The sensor's ingest jobs are registered with it.
    return dg.Definitions(assets=list(RAW_EVENT_ASSETS.values()), sensors=[nats_events_sensor])
