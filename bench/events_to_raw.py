"""Events per second, NATS JetStream -> Raw, against a bare JetStream consume of the same messages;
and HTTP -> NATS through the gateway, against a bare JetStream publish of as many events.

Real path: the event connector's batch (durable pull consumer, dedupe against Raw by event_id,
contract validation, one Delta commit on S3 with lineage, then acknowledgement), as the
`connector` identity with credentials from OpenBao. Baseline: a bare pull consumer on the same
stream fetching and acknowledging the same messages, nothing else.

HTTP part: the same number of new events POSTed to `mlsec gateway` in its own process, in
requests of ``--http-batch`` events (token, body read and checked as it arrives, each event
validated, encoded and sized, published, every acknowledgement awaited, audit), one request
at a time. Baseline: the events published straight to JetStream as the gateway's NATS user
(publish_async, every acknowledgement awaited), in the same run.

    .venv/bin/python bench/events_to_raw.py --events 200000
    .venv/bin/python bench/events_to_raw.py --events 200000 --parts http --http-batch 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import psutil
from nats.js import api

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import bench_client, benchmark_stack, gateway_process, gateway_token, report  # noqa: E402

from mlsec_platform.catalog.sources import EVENT_DOMAINS  # noqa: E402
from mlsec_platform.defs.raw.events import ingest_event_batch  # noqa: E402
from mlsec_platform.defs.resources import build_resources  # noqa: E402
from mlsec_platform.resources.vault import VaultResource  # noqa: E402
from mlsec_platform.sources import event_stream  # noqa: E402
from mlsec_platform.stack.ports import PortAllocator  # noqa: E402
from mlsec_platform.stack.secret_files import read_secret_json  # noqa: E402

CONTRACT = EVENT_DOMAINS["order_status"]


def _event(i: int) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "order_created",
        "order_id": f"o{i}",
        "customer_id": f"c{i}",
        "status": "created",
        "occurred_at": "2018-01-01T00:00:00Z",
        "seller_id": None,
    }


async def publish(url: str, creds: dict, n: int) -> float:
    nc = await event_stream.connect(url, creds)
    js = nc.jetstream()
    started = time.perf_counter()
    for start in range(0, n, 10_000):
        futures = []
        for i in range(start, min(n, start + 10_000)):
            event = _event(i)
            headers = {"Nats-Msg-Id": event["event_id"]}
            payload = json.dumps(event).encode()
            futures.append(await js.publish_async(CONTRACT.subject, payload, headers=headers))
        await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await nc.close()
    return elapsed


async def bare_consume(url: str, creds: dict, n: int, fetch: int, fast: bool = False) -> float:
    """Baseline: a fresh pull consumer over the same subject, fetch + ack, nothing else.

    ``fast`` pulls the way the connector does (event_stream.pull_batch); otherwise nats-py's
    own ``fetch`` is used.
    """
    nc = await event_stream.connect(url, creds)
    js = nc.jetstream()
    # Same consumer settings as the connector's durable (no cap on unacknowledged messages).
    config = api.ConsumerConfig(max_ack_pending=-1, ack_wait=60)
    sub = await js.pull_subscribe(
        CONTRACT.subject,
        durable=f"bench_{uuid.uuid4().hex[:8]}",
        stream=event_stream.STREAM,
        config=config,
    )
    got = 0
    durable = (await sub.consumer_info()).name
    started = time.perf_counter()
    while got < n:
        if fast:
            msgs = await event_stream.pull_batch(
                nc, event_stream.STREAM, durable, min(fetch, n - got)
            )
        else:
            msgs = await sub.fetch(min(fetch, n - got), timeout=5)
        for msg in msgs:
            await msg.ack()
        got += len(msgs)
    await nc.flush()
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    await nc.close()
    return elapsed


def nats_to_raw(settings, resources, publisher: dict, events: int, batch_size: int) -> None:
    """Events published to JetStream, then committed to Raw by the connector's batches."""
    nats = resources["nats_connector"]
    creds = read_secret_json(settings.secrets_dir / "nats-platform.json")
    print(f"publishing {events:,} events ...", flush=True)
    pub = asyncio.run(publish(nats.url, publisher, events))
    print(f"  published in {pub:.1f}s ({events / pub:,.0f} events/s)")

    print("baseline: bare JetStream consume (nats-py fetch) ...", flush=True)
    bare = asyncio.run(bare_consume(nats.url, creds, events, fetch=5000))
    print("baseline: bare JetStream consume (the connector's pull) ...", flush=True)
    bare_fast = asyncio.run(bare_consume(nats.url, creds, events, 5000, fast=True))

    print("real path: connector batches into Raw ...", flush=True)
    done, batches, started = 0, 0, time.perf_counter()
    phases: dict[str, float] = {}
    while done < events:
        batches += 1
        result = ingest_event_batch(
            resources["lake_connector"],
            nats,
            CONTRACT,
            f"bench-{batches}",
            max_events=batch_size,
        )
        done += result.committed_rows
        for phase, seconds in result.seconds.items():
            phases[phase] = phases.get(phase, 0.0) + seconds
        if not result.fetched:
            break
    real = time.perf_counter() - started
    assert done == events, f"committed {done} of {events}"
    print("  phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))
    title = f"NATS -> Raw, {events:,} events in {batches} batches of {batch_size:,}"
    target = ">= 20,000 events/s sustained on the real path"
    report(
        title + " vs nats-py fetch+ack",
        events / real,
        events / bare,
        "events/s",
        target,
    )
    report(
        title + " vs the same pull, fetch+ack only",
        events / real,
        events / bare_fast,
        "events/s",
        target,
    )


async def bare_publish(url: str, creds: dict, messages: list[tuple[str, bytes]]) -> float:
    """Encoded events published as they are, every acknowledgement awaited (10,000 at a time)."""
    nc = await event_stream.connect(url, creds)
    js = nc.jetstream()
    started = time.perf_counter()
    for start in range(0, len(messages), 10_000):
        futures = [
            await js.publish_async(CONTRACT.subject, payload, headers={"Nats-Msg-Id": event_id})
            for event_id, payload in messages[start : start + 10_000]
        ]
        await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await nc.close()
    return elapsed


def http_part(settings, nats_url: str, publisher: dict, events: int, per_request: int) -> None:
    """Events POSTed to the gateway in its own process over mTLS, against a bare JetStream
    publish."""
    with bench_client(settings) as (tls, certificate):
        _http_part(settings, nats_url, publisher, events, per_request, tls, certificate)


def _http_part(settings, nats_url, publisher, events, per_request, tls, certificate) -> None:
    token = gateway_token(settings, f"publish:{CONTRACT.domain}", certificate)
    bodies = []
    for start in range(0, events, per_request):
        chunk = [_event(i) for i in range(start, min(events, start + per_request))]
        bodies.append((orjson.dumps(chunk), len(chunk)))
    size = sum(len(body) for body, _ in bodies)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = f"/v1/events/{CONTRACT.domain}"
    with (
        gateway_process(PortAllocator().take(), tls) as (url, proc),
        httpx.Client(
            base_url=url, headers=headers, timeout=600, verify=tls.ssl_context()
        ) as client,
    ):
        warm = client.post(path, content=orjson.dumps([_event(0)]))  # connections, imports
        assert warm.status_code == 202, warm.text
        print(f"HTTP -> NATS: {events:,} events, {size / 2**20:.1f} MiB of JSON ...", flush=True)
        gateway = psutil.Process(proc.pid)
        cpu = sum(gateway.cpu_times()[:2])
        started = time.perf_counter()
        for body, n in bodies:
            answer = client.post(path, content=body)
            assert answer.status_code == 202 and answer.json()["accepted"] == n, answer.text
        real = time.perf_counter() - started
        cpu = sum(gateway.cpu_times()[:2]) - cpu
    # CPU time does not depend on what else the machine runs as much as wall time does.
    print(f"  gateway CPU {cpu:.2f} s: {cpu / events * 1e6:.1f} us per event")
    print("baseline: bare JetStream publish of as many events ...", flush=True)
    messages = [(e["event_id"], orjson.dumps(e)) for e in map(_event, range(events))]
    bare = asyncio.run(bare_publish(nats_url, publisher, messages))
    report(
        f"HTTP -> NATS through the gateway, {events:,} events in requests of {per_request:,}",
        events / real,
        events / bare,
        "events/s",
        "no fewer events/s than before the batches were streamed (bench/README.md)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--http-batch", type=int, default=10_000, help="events per request")
    parser.add_argument("--parts", choices=["all", "raw", "http"], default="all")
    args = parser.parse_args()

    with benchmark_stack() as settings:
        resources = build_resources(settings)
        nats = resources["nats_connector"]
        gateway = VaultResource(
            addr=settings.endpoints().vault_addr,
            identity="gateway",
            credentials_dir=str(settings.identities_dir),
        )
        # Publishing as the gateway does; the baselines' own consumers need the admin login.
        publisher = gateway.read_kv("nats/gateway")
        if args.parts in ("all", "raw"):
            nats_to_raw(settings, resources, publisher, args.events, args.batch)
        if args.parts in ("all", "http"):  # after the Raw part: nothing consumes these
            http_part(settings, nats.url, publisher, args.events, args.http_batch)


if __name__ == "__main__":
    main()
