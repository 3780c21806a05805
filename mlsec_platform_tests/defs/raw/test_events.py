"""100k events through the gateway into Raw, with the consuming process killed part way."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import dagster as dg
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from mlsec_platform.catalog.sources import EVENT_DOMAINS
from mlsec_platform.defs.raw.events import RAW_EVENT_ASSETS, pending_events
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.settings import Zone
from mlsec_platform.storage.raw_writer import LINEAGE_COLUMNS

EVENTS = 100_000
CONTRACT = EVENT_DOMAINS["order_status"]

CONSUMER = """
from mlsec_platform.defs.raw.events import ingest_event_batch
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.catalog.sources import EVENT_DOMAINS
resources = build_resources()
for i in range(1000):
    result = ingest_event_batch(resources["lake_connector"], resources["nats_connector"],
                                EVENT_DOMAINS["order_status"], f"killed-run-{i}", max_events=20000)
    print(result.committed_rows, flush=True)
    if not result.fetched:
        break
"""


@pytest.fixture(scope="module")
def resources(settings, supervisor):
    return build_resources(settings)


def _events(n: int) -> list[dict]:
    statuses = ["created", "approved", "shipped", "delivered"]
    return [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": f"order_{statuses[i % 4]}",
            "order_id": f"order-{i // 4}",
            "customer_id": f"customer-{i // 4}",
            "status": statuses[i % 4],
            "occurred_at": "2018-01-01T00:00:00Z",
            "seller_id": None if i % 4 < 2 else "seller-1",
        }
        for i in range(n)
    ]


def _raw_ids(resources) -> list[str]:
    lake = resources["lake_connector"]
    table = DeltaTable(
        lake.table_uri(Zone.RAW, CONTRACT.source), storage_options=lake.storage_options()
    )
    return table.to_pyarrow_table(columns=["event_id"]).column(0).to_pylist()


def test_100k_events_nothing_lost_nothing_doubled(gateway, uploader, resources, settings):
    events = _events(EVENTS)
    ours = {e["event_id"] for e in events}
    for start in range(0, EVENTS, 10_000):
        chunk = events[start : start + 10_000]
        response = gateway.post(
            "/v1/events/order_status", content=json.dumps(chunk), headers=uploader
        )
        assert response.status_code == 202 and response.json()["accepted"] == len(chunk)

    # A consumer process, killed hard once it has committed at least one batch.
    proc = subprocess.Popen(
        [sys.executable, "-c", CONSUMER], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    first = proc.stdout.readline()
    assert first.strip().isdigit() and int(first) > 0, first
    time.sleep(0.3)  # somewhere inside the next batch: fetching, committing or acknowledging
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    assert len(set(_raw_ids(resources)) & ours) < EVENTS  # it really was cut short

    # The sensor's path from here on: partitions and runs of the raw asset, until drained.
    instance = dg.DagsterInstance.ephemeral()
    asset = RAW_EVENT_ASSETS["order_status"]
    deadline = time.monotonic() + 120
    batch = 0
    while pending_events(resources["nats_connector"], "order_status"):
        assert time.monotonic() < deadline, "events still pending after 120 s"
        batch += 1
        key = f"after-kill-{batch}"
        instance.add_dynamic_partitions(f"{CONTRACT.source}_batches", [key])
        result = dg.materialize([asset], partition_key=key, resources=resources, instance=instance)
        assert result.success
        if (
            not result.get_asset_materialization_events()[0]
            .event_specific_data.materialization.metadata["fetched"]
            .value
        ):
            time.sleep(1)  # unacked events of the killed run come back after the ack wait

    ids = _raw_ids(resources)
    assert len(ids) == len(set(ids)), "an event is in Raw twice"
    assert ours <= set(ids), f"{len(ours - set(ids))} events lost"


def test_lineage_columns_on_every_event(resources):
    lake = resources["lake_connector"]
    table = DeltaTable(
        lake.table_uri(Zone.RAW, CONTRACT.source), storage_options=lake.storage_options()
    )
    data = table.to_pyarrow_table()
    for column in (*LINEAGE_COLUMNS, "_stream_seq"):
        assert data.column(column).null_count == 0, column
    assert pc.all(pc.equal(data.column("_connector"), "nats_events")).as_py()
    assert pc.all(pc.equal(pc.utf8_length(data.column("_sha256")), 64)).as_py()
    assert table.metadata().configuration["delta.appendOnly"] == "true"


def test_raw_refuses_every_identity_but_the_connector(resources, settings):
    """The pipeline may read raw but S3 itself refuses its writes."""
    import pyarrow as pa

    from mlsec_platform.storage.raw_writer import Lineage, commit_raw_batch

    columns = [*CONTRACT.fields, "_stream_seq", "_nats_received_at"]
    batch = pa.table({name: pa.array(["x"], pa.string()) for name in columns})
    lineage = Lineage("events_order_status", "intruder", "0", "intrusion", "now", "0" * 64)
    with pytest.raises((OSError, DeltaError), match="<Code>AccessDenied</Code>"):
        commit_raw_batch(resources["lake_pipeline"], batch, lineage, run_id=None)
    assert "intrusion" not in set(
        DeltaTable(
            resources["lake_connector"].table_uri(Zone.RAW, CONTRACT.source),
            storage_options=resources["lake_connector"].storage_options(),
        )
        .to_pyarrow_table(columns=["_batch_id"])
        .column(0)
        .to_pylist()
    )


def test_rerunning_a_partition_commits_new_events(gateway, uploader, resources):
    """A partition run again (e.g. from the UI) must commit what it pulls, not skip it."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(f"{CONTRACT.source}_batches", ["rerun"])
    asset = RAW_EVENT_ASSETS["order_status"]
    published = set()
    for _ in range(2):
        events = _events(5)
        published |= {e["event_id"] for e in events}
        gateway.post("/v1/events/order_status", content=json.dumps(events), headers=uploader)
        assert dg.materialize(
            [asset], partition_key="rerun", resources=resources, instance=instance
        ).success
    assert published <= set(_raw_ids(resources))
