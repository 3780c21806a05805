"""Freshness: from an order event's acceptance by the gateway to its effect in /feature/vector,
beside a full `curated` run on the same data.

``--orders`` generated orders are committed to Raw and curated once (in this process, on the
stack's own Dagster instance). Then the Dagster daemon runs against that instance with the
workspace's code locations, so the sensors act on their own: the NATS sensor launches Raw
batch runs, the automation sensor the curated runs below them. The gateway (its own process)
receives order events at ``--rate`` per second for ``--seconds``, each for an order already
curated, stamped with the time it is sent; one event per ``--sample-every`` seconds is
followed: its acceptance time is when the gateway answered 202, and its effect is visible when
``/feature/vector`` (the broker in its own process, as an analyst of confidential clearance)
shows the person's ``customer_order_status.event_timestamp`` at or after the event's time.
Polled every ``--poll`` seconds, so figures are that coarse. Baseline, in the same run once
the daemon is stopped: the `curated` job with the full-rebuild tag over the same Raw.

    .venv/bin/python bench/freshness.py --orders 20000 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dagster as dg  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
from _phases import event_phases, phase_table, run_table, runs_since  # noqa: E402
from _stack import (  # noqa: E402
    analyst_token,
    bench_client,
    benchmark_stack,
    gateway_process,
    gateway_token,
)
from broker import broker_process, percentile  # noqa: E402
from pipeline import curated_job, seed_raw  # noqa: E402

from mlsec_platform.catalog.sources import EVENT_DOMAINS  # noqa: E402
from mlsec_platform.defs.resources import build_resources  # noqa: E402
from mlsec_platform.settings import Zone  # noqa: E402
from mlsec_platform.stack.orchestrator import (  # noqa: E402
    apply_environment,
    orchestrator_environment,
    project_root,
)
from mlsec_platform.stack.ports import PortAllocator  # noqa: E402
from mlsec_platform.storage.incremental import FULL_REBUILD_TAG  # noqa: E402
from mlsec_platform.storage.snapshots import read_snapshot  # noqa: E402
from mlsec_platform.transforms.duck import run_sql  # noqa: E402

CONTRACT = EVENT_DOMAINS["order_status"]
GROUP = "customer_order_status"
#: Requests per second the events are sent in (rate / this events each).
REQUESTS_PER_SECOND = 10


def timed_curated(tags: dict[str, str]) -> float:
    """Seconds of one `curated` run in this process, on the stack's Dagster instance."""
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = curated_job().execute_in_process(
            instance=instance,
            tags=tags,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit(
            f"curated failed: {[e.message for e in result.all_events if e.is_failure]}"
        )
    return seconds


def curated_orders(resources: dict) -> list[tuple[str, str, str]]:
    """(order id, customer id, customer token) of every curated order."""
    lake = resources["lake_pipeline"]
    rows = run_sql(
        """SELECT o.order_id, o.customer_id, c.customer_token
           FROM orders o JOIN customers c USING (customer_id)""",
        orders=read_snapshot(lake, Zone.SILVER, "orders").dataset,
        customers=read_snapshot(lake, Zone.SILVER, "customers").dataset,
    )
    return list(zip(*(rows.column(i).to_pylist() for i in range(3)), strict=True))


def event(order: tuple[str, str, str]) -> dict:
    """An approval of ``order``, happening now (microseconds: the followed event's mark)."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "order_approved",
        "order_id": order[0],
        "customer_id": order[1],
        "status": "approved",
        "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "seller_id": None,
    }


class Followed:
    """The sampled events: person, event time, acceptance time; and when each was seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[str, datetime, float]] = {}
        self.latency: dict[int, float] = {}
        # Wall-clock acceptance and sighting, to place each event on the runs' event log.
        self.accepted_at: dict[int, float] = {}
        self.seen_at: dict[int, float] = {}
        #: Each request's time at the gateway (its 202 comes once JetStream acked the events).
        self.requests: list[float] = []

    def add(self, token: str, occurred: str, accepted: float) -> None:
        at = datetime.fromisoformat(occurred.replace("Z", "+00:00"))
        with self.lock:
            i = len(self.pending) + len(self.latency)
            self.pending[i] = (token, at, accepted)
            self.accepted_at[i] = time.time() - (time.monotonic() - accepted)


def publish(url, token, tls, orders, rate: int, seconds: float, every: float, followed) -> int:
    """Events at ``rate``/s through the gateway for ``seconds``; follows one per ``every`` s."""
    per_request = max(1, rate // REQUESTS_PER_SECOND)
    path = f"/v1/events/{CONTRACT.domain}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    sent, started, next_sample = 0, time.monotonic(), 0.0
    rng = random.Random(7)  # noqa: S311 - which orders get an event: no secret, repeatable
    with httpx.Client(base_url=url, headers=headers, verify=tls, timeout=60) as http:
        while (elapsed := time.monotonic() - started) < seconds:
            chosen = rng.choices(orders, k=per_request)
            batch = [event(o) for o in chosen]
            asked = time.monotonic()
            answer = http.post(path, content=orjson.dumps(batch))
            accepted = time.monotonic()
            followed.requests.append(accepted - asked)
            if answer.status_code != 202:
                raise SystemExit(f"the gateway refused a batch: {answer.status_code} {answer.text}")
            sent += len(batch)
            if elapsed >= next_sample:
                followed.add(chosen[-1][2], batch[-1]["occurred_at"], accepted)
                next_sample += every
            # Paced to the rate: the next request when its events are due.
            time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    return sent


def poll(url, token, tls, followed: Followed, interval: float, stop: threading.Event) -> None:
    """Ask the broker for every followed person not seen yet, every ``interval`` s."""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, verify=tls, timeout=60
    ) as http:
        while not stop.is_set():
            with followed.lock:
                pending = dict(list(followed.pending.items())[:100])
            if pending:
                params = [("group", GROUP)] + [("entity", t) for t, _, _ in pending.values()]
                params.append(("feature", "event_timestamp"))
                answer = http.get("/feature/vector", params=params)
                answer.raise_for_status()
                now = time.monotonic()
                stamps = {
                    v["customer_token"]: datetime.fromisoformat(v["event_timestamp"])
                    for v in answer.json()["vectors"]
                }
                with followed.lock:
                    for i, (person, at, accepted) in pending.items():
                        if person in stamps and stamps[person] >= at:
                            followed.latency[i] = now - accepted
                            followed.seen_at[i] = time.time() - (time.monotonic() - now)
                            del followed.pending[i]
            stop.wait(interval)


def daemon(settings, log: Path) -> subprocess.Popen:
    """``dagster-daemon run`` over the workspace, on the stack's instance."""
    env = {**os.environ, **orchestrator_environment(settings)}
    command = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    return subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        command,
        cwd=project_root(),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


#: What the daemon logs once each sensor of the path has ticked: its code locations are loaded.
TICKED = ("Checking for new runs for sensor: nats_events_sensor", "for curated_automation in")


def wait_for_sensors(log: Path, proc: subprocess.Popen, timeout: float = 600) -> float:
    """Seconds until both sensors of the path have ticked (publishing before would measure
    the daemon's start, which a running platform does not pay)."""
    started = time.monotonic()
    while not all(t in log.read_text(errors="replace") for t in TICKED):
        if proc.poll() is not None or time.monotonic() - started > timeout:
            raise SystemExit(f"the daemon's sensors did not tick:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    return time.monotonic() - started


def phases(since: float, followed: Followed) -> list[str]:
    """The runs the sensors launched since ``since`` and the followed events' phases."""
    with dg.DagsterInstance.get() as instance:
        runs = runs_since(instance, since)
    placed = [
        p
        for i, seen in followed.seen_at.items()
        if (p := event_phases(runs, followed.accepted_at[i], seen)) is not None
    ]
    return run_table(runs, since) + (phase_table(placed, percentile) if placed else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sample-every", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--wait", type=float, default=600.0, help="most seconds to wait after")
    args = parser.parse_args()

    with benchmark_stack() as settings, bench_client(settings) as (client, certificate):
        apply_environment(orchestrator_environment(settings))
        resources = build_resources(settings)
        seed_raw(resources, args.orders)
        first = timed_curated({})
        print(f"curated {args.orders:,} orders (first build) in {first:.1f}s", flush=True)
        orders = curated_orders(resources)
        reader = analyst_token(settings, certificate)
        publisher = gateway_token(settings, f"publish:{CONTRACT.domain}", certificate)
        tls = client.ssl_context()
        followed, stop = Followed(), threading.Event()
        daemon_log = settings.root / "daemon.log"
        proc = daemon(settings, daemon_log)
        try:
            print(f"daemon's sensors ticking after {wait_for_sensors(daemon_log, proc):.0f}s")
            with (
                gateway_process(PortAllocator().take(), client) as (gateway, _),
                broker_process(settings, PortAllocator().take(), tls) as broker,
            ):
                poller = threading.Thread(
                    target=poll, args=(broker, reader, tls, followed, args.poll, stop)
                )
                poller.start()
                began = time.time()
                print(f"publishing {args.rate:,} events/s for {args.seconds:g} s ...", flush=True)
                sent = publish(
                    gateway, publisher, tls, orders, args.rate, args.seconds,
                    args.sample_every, followed,
                )  # fmt: skip
                print(f"  sent {sent:,} events; waiting for the followed ones ...", flush=True)
                deadline = time.monotonic() + args.wait
                while followed.pending and time.monotonic() < deadline:
                    time.sleep(1)
                stop.set()
                poller.join()
                table = phases(began, followed)
        finally:
            proc.terminate()
            proc.wait(60)
        latencies = sorted(followed.latency.values())
        unseen = len(followed.pending)
        full = timed_curated({FULL_REBUILD_TAG: "true"})
        load = os.getloadavg()
        print(f"\nfreshness, {args.orders:,} orders, {sent:,} events at {args.rate:,}/s")
        if latencies:
            print(
                f"  real path : acceptance -> /feature/vector p50 {percentile(latencies, 0.5):.1f}s"
                f"  p95 {percentile(latencies, 0.95):.1f}s  max {latencies[-1]:.1f}s"
                f"  ({len(latencies)} followed events, {unseen} never seen)"
            )
        else:
            print(f"  real path : no followed event was seen ({unseen} pending)")
        asks = sorted(followed.requests)
        print(
            f"  gateway   : request -> 202 (JetStream acked) p50 {percentile(asks, 0.5):.3f}s"
            f"  p95 {percentile(asks, 0.95):.3f}s (before acceptance, not in the latency)"
        )
        print(f"  baseline  : full `curated` run on the same data {full:.1f}s")
        if latencies:
            print(f"  ratio     : p95 / full run {percentile(latencies, 0.95) / full:.2f}")
        print("  target    : p95 at most 60 s")
        print(f"  load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        print("\n".join(table))
        if unseen:
            print(f"  daemon log: {daemon_log} (removed with the stack)")
            print(daemon_log.read_text()[-3000:])


if __name__ == "__main__":
    main()
