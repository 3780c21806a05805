"""An order event accepted by the gateway reaches ``/feature/vector`` with no one launching a
run: the Dagster daemon's sensors do it (the NATS sensor the Raw batch, the automation sensor
the curated run below it), on a stack of its own with a few hundred curated orders.

The only deadline is a generous wait-until (the machine may be loaded); the test asserts what
was served and who launched the runs, never how fast.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from broker_api.identity import issue_broker_token
from broker_api.server import BackgroundBroker
from mlsec_platform.defs.automation import curated_automation
from mlsec_platform.defs.raw.events import nats_events_sensor
from mlsec_platform.gateway.server import BackgroundGateway
from mlsec_platform.sample_data.olist import generate
from mlsec_platform.settings import Zone
from mlsec_platform.stack.orchestrator import orchestrator_environment, project_root
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform.storage.snapshots import read_snapshot
from mlsec_platform_tests.helpers import (
    OwnStack,
    environment,
    https_client,
    operator_vault,
    session_client,
    stack_of_its_own,
    upload_token,
)

ORDERS = 300
#: Generous: the daemon loads three code locations and starts two runs on a shared machine.
DEADLINE_SECONDS = 900


@dataclass
class Freshness:
    stack: OwnStack
    resources: dict
    #: When the first (in-process, manual) curated run ended: later runs are the sensors'.
    curated_at: float


@pytest.fixture(scope="module")
def freshness_stack(tmp_path_factory) -> Iterator[Freshness]:
    from mlsec_platform.defs.resources import build_resources
    from mlsec_platform_tests.curated_data import run_curated, seed_raw

    with (
        stack_of_its_own(tmp_path_factory, "mlsec-freshness") as stack,
        environment(stack.env),
        environment(orchestrator_environment(stack.settings)),
    ):
        resources = build_resources(stack.settings)
        seed_raw(resources, generate(seed=23, orders=ORDERS), "fresh")
        with dg.DagsterInstance.get() as instance:
            result = run_curated(resources, instance)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        yield Freshness(stack, resources, time.time())


@pytest.fixture
def daemon(freshness_stack: Freshness) -> Iterator[None]:
    """``dagster-daemon run`` over the workspace, on the stack's instance, for the test."""
    log = freshness_stack.stack.settings.root / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=project_root(),
            env=os.environ.copy(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def an_order(resources: dict) -> tuple[str, str, str]:
    """A curated order: its id, its customer id, and the person's token."""
    lake = resources["lake_pipeline"]
    orders = read_snapshot(lake, Zone.SILVER, "orders").table.slice(0, 1).to_pylist()[0]
    customers = read_snapshot(lake, Zone.SILVER, "customers").table.to_pylist()
    [token] = [c["customer_token"] for c in customers if c["customer_id"] == orders["customer_id"]]
    return orders["order_id"], orders["customer_id"], token


def test_an_event_through_the_gateway_reaches_the_feature_vector_on_its_own(
    freshness_stack: Freshness, daemon
):
    settings = freshness_stack.stack.settings
    order_id, customer_id, person = an_order(freshness_stack.resources)
    occurred = datetime.now(UTC).replace(microsecond=0)
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order_canceled",
        "order_id": order_id,
        "customer_id": customer_id,
        "status": "canceled",
        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seller_id": None,
    }
    client = session_client(settings)
    endpoints = settings.endpoints()
    publisher = upload_token(settings, endpoints, "publish:order_status")
    reader = issue_broker_token(
        operator_vault(settings, endpoints),
        subject="freshness-reader",
        groups=["analysts"],
        project="olist-br",
        purpose="analytics",
        clearance="confidential",
        ttl_seconds=DEADLINE_SECONDS + 300,
        certificate=client.pem,
    )
    with (
        BackgroundGateway(settings, PortAllocator().take()) as gateway,
        BackgroundBroker(settings, PortAllocator().take()) as broker,
        https_client(gateway.url, client.tls) as to_gateway,
        https_client(broker.url, client.tls) as to_broker,
    ):
        accepted = to_gateway.post(
            "/v1/events/order_status",
            json=[event],
            headers={"Authorization": f"Bearer {publisher}"},
        )
        assert accepted.status_code == 202, accepted.text
        vector = wait_for_vector(to_broker, reader, person, occurred)
    assert vector["last_order_status"] == "canceled"
    assert vector["orders_canceled"] >= 1
    assert vector["feature_group_version"] == "customer_order_status:v1"
    # Nobody launched a run after the first curation: the two sensors did, each its own.
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(
            dg.RunsFilter(created_after=datetime.fromtimestamp(freshness_stack.curated_at, UTC))
        )
    launched_by = {r.tags.get("dagster/sensor_name") for r in runs}
    assert None not in launched_by, [(r.job_name, r.tags) for r in runs]
    assert {nats_events_sensor.name, curated_automation.name} <= launched_by


def wait_for_vector(http, token: str, person: str, occurred: datetime) -> dict:
    """The person's order-status vector once it shows an event at or after ``occurred``."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    last = None
    while time.monotonic() < deadline:
        answer = http.get(
            "/feature/vector",
            params={"group": "customer_order_status", "entity": person},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        last = answer.json()["vectors"]
        if last and datetime.fromisoformat(last[0]["event_timestamp"]) >= occurred:
            return last[0]
        time.sleep(2)
    pytest.fail(f"no vector showed the event within {DEADLINE_SECONDS} s; last seen: {last}")
