"""The JetStream stream events land in, and the durable consumer of each event domain."""

from __future__ import annotations

import asyncio
import json
import ssl

import nats
from nats.js import api
from nats.js.errors import NotFoundError

from mlsec_platform.catalog.sources import EVENT_DOMAINS
from mlsec_platform.settings import PlatformSettings, get_settings

STREAM = "RAW_EVENTS"
SUBJECTS = ["raw.*.ingest"]
#: Publishes with the same Nats-Msg-Id (the event id) within this window are stored once.
DUPLICATE_WINDOW_SECONDS = 600


def durable_name(domain: str) -> str:
    return f"raw_{domain}"


def tls_context(settings: PlatformSettings | None = None) -> ssl.SSLContext:
    """TLS 1.2+ verifying the NATS server (name included) against its CA bundle."""
    context = ssl.create_default_context(cafile=(settings or get_settings()).server_ca("nats"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def connect(url: str, credentials: dict, *, long_lived: bool = False) -> nats.NATS:
    """A client connection over verified TLS. Long-lived ones (the gateway) reconnect for as
    long as it takes; short ones (a connector run) give up after a few attempts and fail the
    run."""
    return await nats.connect(
        url,
        user=credentials["user"],
        password=credentials["password"],
        tls=tls_context(),
        connect_timeout=5,
        max_reconnect_attempts=-1 if long_lived else 3,
        allow_reconnect=True,
    )


async def ensure_stream(nc: nats.NATS, *, ack_wait_seconds: float) -> None:
    """Create or update the stream and one durable pull consumer per domain (idempotent)."""
    js = nc.jetstream()
    config = api.StreamConfig(
        name=STREAM,
        subjects=SUBJECTS,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        max_age=14 * 24 * 3600,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    try:
        await js.stream_info(STREAM)
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)
    for domain in EVENT_DOMAINS:
        await js.add_consumer(
            STREAM,
            api.ConsumerConfig(
                durable_name=durable_name(domain),
                filter_subject=f"raw.{domain}.ingest",
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=ack_wait_seconds,
                max_ack_pending=-1,
                deliver_policy=api.DeliverPolicy.ALL,
            ),
        )


async def pull_batch(
    nc: nats.NATS, stream: str, durable: str, batch: int, *, wait: float = 0.5
) -> list:
    """One JetStream pull request for up to ``batch`` messages of a durable consumer.

    Messages are collected by the subscription callback: nats-py's ``fetch`` awaits every
    message with its own timeout, which caps a Python consumer far below what the server
    sends. Returns early when the server says no more are waiting (status 404/408).
    """
    messages: list = []
    finished = asyncio.get_running_loop().create_future()

    async def collect(msg) -> None:
        if msg.headers and msg.headers.get("Status"):
            # 404 no messages, 408 request expired, 409 consumer limits: the pull is over.
            if not finished.done():
                finished.set_result(None)
            return
        messages.append(msg)
        if len(messages) >= batch and not finished.done():
            finished.set_result(None)

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=collect, pending_msgs_limit=batch + 16)
    request = {"batch": batch, "expires": int(wait * 1e9), "no_wait": True}
    await nc.publish(
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", json.dumps(request).encode(), reply=inbox
    )
    try:
        await asyncio.wait_for(finished, wait + 5)
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return messages
