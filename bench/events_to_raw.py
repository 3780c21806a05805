"""Events per second, NATS JetStream -> Raw, against a bare JetStream consume of the same messages.

Real path: the event connector's batch (durable pull consumer, dedupe against Raw by event_id,
contract validation, one Delta commit on S3 with lineage, then acknowledgement), as the
`connector` identity with credentials from OpenBao. Baseline: a bare pull consumer on the same
stream fetching and acknowledging the same messages, nothing else.

    .venv/bin/python bench/events_to_raw.py --events 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

from nats.js import api

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import benchmark_stack, report  # noqa: E402

from mlsec_platform.catalog.sources import EVENT_DOMAINS  # noqa: E402
from mlsec_platform.defs.raw.events import ingest_event_batch  # noqa: E402
from mlsec_platform.defs.resources import build_resources  # noqa: E402
from mlsec_platform.resources.vault import VaultResource  # noqa: E402
from mlsec_platform.sources import event_stream  # noqa: E402
from mlsec_platform.stack.secret_files import read_secret_json  # noqa: E402

CONTRACT = EVENT_DOMAINS["order_status"]


async def publish(url: str, creds: dict, n: int) -> float:
    nc = await event_stream.connect(url, creds)
    js = nc.jetstream()
    started = time.perf_counter()
    for start in range(0, n, 10_000):
        futures = []
        for i in range(start, min(n, start + 10_000)):
            event = {
                "event_id": str(uuid.uuid4()),
                "event_type": "order_created",
                "order_id": f"o{i}",
                "customer_id": f"c{i}",
                "status": "created",
                "occurred_at": "2018-01-01T00:00:00Z",
                "seller_id": None,
            }
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000)
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
        creds = read_secret_json(settings.secrets_dir / "nats-platform.json")
        print(f"publishing {args.events:,} events ...", flush=True)
        pub = asyncio.run(publish(nats.url, publisher, args.events))
        print(f"  published in {pub:.1f}s ({args.events / pub:,.0f} events/s)")

        print("baseline: bare JetStream consume (nats-py fetch) ...", flush=True)
        bare = asyncio.run(bare_consume(nats.url, creds, args.events, fetch=5000))
        print("baseline: bare JetStream consume (the connector's pull) ...", flush=True)
        bare_fast = asyncio.run(bare_consume(nats.url, creds, args.events, 5000, fast=True))

        print("real path: connector batches into Raw ...", flush=True)
        done, batches, started = 0, 0, time.perf_counter()
        phases: dict[str, float] = {}
        while done < args.events:
            batches += 1
            result = ingest_event_batch(
                resources["lake_connector"],
                nats,
                CONTRACT,
                f"bench-{batches}",
                max_events=args.batch,
            )
            done += result.committed_rows
            for phase, seconds in result.seconds.items():
                phases[phase] = phases.get(phase, 0.0) + seconds
            if not result.fetched:
                break
        real = time.perf_counter() - started
        assert done == args.events, f"committed {done} of {args.events}"
        print("  phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))
        title = f"NATS -> Raw, {args.events:,} events in {batches} batches of {args.batch:,}"
        target = ">= 20,000 events/s sustained on the real path"
        report(
            title + " vs nats-py fetch+ack",
            args.events / real,
            args.events / bare,
            "events/s",
            target,
        )
        report(
            title + " vs the same pull, fetch+ack only",
            args.events / real,
            args.events / bare_fast,
            "events/s",
            target,
        )


if __name__ == "__main__":
    main()
