"""NATS: the gateway may only publish events, the connector may only pull and acknowledge."""

import asyncio
import json
import uuid

import nats
import pytest

from mlsec_platform.sources import event_stream
from mlsec_platform_tests.helpers import vault_as


async def _attempt(url: str, credentials: dict, action) -> list[str]:
    """Run `action(nc)`; return the permission violations the server reported."""
    errors: list[str] = []

    async def record(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        url,
        user=credentials["user"],
        password=credentials["password"],
        error_cb=record,
        max_reconnect_attempts=0,
        tls=event_stream.tls_context(),
    )
    try:
        await action(nc)
        await nc.flush()
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
    return [e for e in errors if "permissions violation" in e.lower()]


def _credentials(identity, settings, endpoints) -> dict:
    vault = vault_as(identity, settings, endpoints)
    try:
        return vault.read_kv(f"nats/{identity}")
    finally:
        vault.revoke()


def test_the_connector_cannot_publish_events(settings, endpoints):
    creds = _credentials("connector", settings, endpoints)
    event = {"event_id": str(uuid.uuid4())}

    async def publish(nc):
        await nc.publish("raw.order_status.ingest", json.dumps(event).encode())

    violations = asyncio.run(_attempt(endpoints.nats_url, creds, publish))
    assert violations and "raw.order_status.ingest" in violations[0].lower()


def test_the_gateway_cannot_pull_events(settings, endpoints):
    creds = _credentials("gateway", settings, endpoints)

    async def pull(nc):
        got = await event_stream.pull_batch(
            nc, event_stream.STREAM, event_stream.durable_name("order_status"), 10, wait=0.3
        )
        assert got == []

    violations = asyncio.run(_attempt(endpoints.nats_url, creds, pull))
    assert violations and "consumer.msg.next" in violations[0].lower()


@pytest.mark.parametrize("identity", ["gateway", "connector"])
def test_neither_may_change_the_stream(identity, settings, endpoints):
    creds = _credentials(identity, settings, endpoints)

    async def delete(nc):
        await nc.publish(f"$JS.API.STREAM.DELETE.{event_stream.STREAM}", b"")

    violations = asyncio.run(_attempt(endpoints.nats_url, creds, delete))
    assert violations and "stream.delete" in violations[0].lower()


def test_other_identities_have_no_nats_login(settings, endpoints):
    from mlsec_platform.resources.vault import VaultAccessDenied

    for identity in ("pipeline", "broker", "auditor"):
        with pytest.raises(VaultAccessDenied):
            vault_as(identity, settings, endpoints).read_kv(f"nats/{identity}")
