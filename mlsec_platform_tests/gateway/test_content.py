"""Hostile content through the real gateway: refused whole with a 4xx, kept by id, audited,
and nothing of it in landing or on the event stream; one caller cannot stop ingestion."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote

import pytest

from mlsec_platform.settings import Zone
from mlsec_platform_tests.helpers import audit_events, audit_head, s3_admin, upload_token

SELLERS_HEADER = "seller_id,seller_zip_code_prefix,seller_city,seller_state\n"
EVENTS = "/v1/events/order_status"


def _event(**overrides) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "order_created",
        "order_id": "o1",
        "status": "created",
        "occurred_at": "2017-10-02T10:56:33Z",
        **overrides,
    }


def _kept(supervisor, settings, kind: str, qid: str) -> bytes:
    """The payload the quarantine keeps under the refusal's id (never under caller text)."""
    key = f"gateway/{kind}/{qid}/payload"
    admin = s3_admin(supervisor, settings)
    return admin.get_object(Bucket=settings.bucket(Zone.QUARANTINE), Key=key)["Body"].read()


def _landing(supervisor, settings) -> set[str]:
    listing = s3_admin(supervisor, settings).list_objects_v2(
        Bucket=settings.bucket(Zone.LANDING), Prefix="incoming/"
    )
    return {o["Key"] for o in listing.get("Contents", [])}


def test_a_nul_deep_in_a_file_refuses_the_whole_file(gateway, uploader, supervisor, settings):
    body = (SELLERS_HEADER + "s1,01001,x,SP\n" * 20_000 + "s2,0\x001,x,SP\n").encode()
    before = _landing(supervisor, settings)
    response = gateway.put("/v1/files/olist_sellers", content=body, headers=uploader)
    assert response.status_code == 415, response.text
    assert "NUL byte at offset" in response.json()["reason"]
    assert _kept(supervisor, settings, "file", response.json()["quarantine_id"]) == body
    assert _landing(supervisor, settings) == before


HOSTILE_NAMES = {
    "dot": ".",
    "dot dot": "..",
    "backslash": "a\\b",
    "nul": "a\x00b",
    "crlf": "a\r\nb",
    "over 1,024 bytes": "n" * 1100,
    "multibyte over 1,024 bytes": "\u00f8" * 600,
}


@pytest.mark.parametrize("name", list(HOSTILE_NAMES.values()), ids=list(HOSTILE_NAMES))
@pytest.mark.parametrize(
    ("method", "door", "kind"), [("PUT", "files", "file"), ("POST", "events", "events")]
)
def test_names_the_quarantine_cannot_hold_are_a_404_kept_by_id_and_audited(
    name, method, door, kind, gateway, uploader, supervisor, settings, superuser_dsn
):
    seq = audit_head(superuser_dsn)
    path = f"/v1/{door}/" + quote(name, safe="").replace(".", "%2E")
    response = gateway.request(method, path, content=b"x", headers=uploader)
    assert response.status_code == 404, response.text
    refusal = response.json()
    assert refusal["reason"].startswith(f"unknown {'source' if kind == 'file' else 'event domain'}")
    assert "\x00" not in refusal["reason"] and "\r" not in refusal["reason"]
    assert _kept(supervisor, settings, kind, refusal["quarantine_id"]) == b"x"
    [event] = [
        e
        for e in audit_events(superuser_dsn, "ingest.rejected", seq)
        if e["quarantine_id"] == refusal["quarantine_id"]
    ]
    assert event["status"] == 404 and len(event["name"].encode()) <= 128


def test_an_event_batch_with_an_oversize_event_is_refused_whole(gateway, uploader):
    first, oversize = _event(), _event(order_id="o" * (2 << 20))  # over NATS' 1 MiB
    body = json.dumps([first, oversize])
    response = gateway.post(EVENTS, content=body, headers=uploader)
    assert response.status_code == 413, response.text
    assert "event 1 is" in response.json()["reason"]
    # The first event was not published: publishing it now is new, not a duplicate.
    again = gateway.post(EVENTS, content=json.dumps([first]), headers=uploader)
    assert again.status_code == 202 and again.json()["accepted"] == 1


def test_a_refused_event_in_a_batch_publishes_none_of_it(gateway, uploader):
    first = _event()
    body = json.dumps([first, _event(event_id="\ud800")], ensure_ascii=True)
    response = gateway.post(EVENTS, content=body, headers=uploader)
    assert response.status_code == 400, response.text
    again = gateway.post(EVENTS, content=json.dumps([first]), headers=uploader)
    assert again.status_code == 202 and again.json()["accepted"] == 1


OVERSIZE = {
    # The case: the id travels twice (payload and message-id header).
    "300 KB id": (_event(event_id="i" * 300_000), 422, "longer than 1024 bytes"),
    # The payload alone passes the NATS client's own check; with its header it is over the
    # server's max_payload (1 MiB), which closes the connection.
    "payload under, message over max_payload": (
        _event(order_id="o" * ((1 << 20) - 200)),
        413,
        "the message server takes at most 1048576 bytes",
    ),
}


@pytest.mark.parametrize("case", list(OVERSIZE), ids=list(OVERSIZE))
def test_an_oversize_event_does_not_stop_ingestion_for_others(
    case, gateway, uploader, settings, endpoints
):
    event, status, reason = OVERSIZE[case]
    response = gateway.post(EVENTS, content=json.dumps([event]), headers=uploader)
    assert response.status_code == status, response.text
    assert reason in response.json()["reason"]
    bob = upload_token(settings, endpoints, "publish:*", subject="bob")
    after = gateway.post(
        EVENTS, content=json.dumps([_event()]), headers={"Authorization": f"Bearer {bob}"}
    )
    assert after.status_code == 202, after.text


def test_a_closed_message_server_connection_is_reopened(gateway, uploader):
    """Whatever closed it (the server after a protocol error, a restart), the next request
    reopens the connection instead of failing until the gateway restarts."""
    gateway.server.run(gateway.server.app.state.publisher.close())
    response = gateway.post(EVENTS, content=json.dumps([_event()]), headers=uploader)
    assert response.status_code == 202, response.text


def test_event_ids_differing_only_in_whitespace_are_refused_not_collapsed(gateway, uploader):
    event_id = str(uuid.uuid4())
    batch = [_event(event_id=event_id), _event(event_id=f" {event_id} ")]
    response = gateway.post(EVENTS, content=json.dumps(batch), headers=uploader)
    assert response.status_code == 422, response.text
    assert "event 1: event_id" in response.json()["reason"]


def test_the_quarantine_lists_entries_kept_by_id_with_their_names(gateway, uploader, settings):
    from mlsec_platform.defs.resources import build_resources
    from mlsec_platform.storage.quarantine import list_quarantine

    response = gateway.put("/v1/files/olist_sellers", content=b"", headers=uploader)
    assert response.status_code == 422
    qid = response.json()["quarantine_id"]
    lake = build_resources(settings)["lake_connector"]
    [entry] = [e for e in list_quarantine(lake) if e.quarantine_id == qid]
    assert (entry.stage, entry.kind, entry.name, entry.status, entry.prefix) == (
        "gateway",
        "file",
        "olist_sellers",
        422,
        f"gateway/file/{qid}",
    )


def test_a_batch_the_server_does_not_acknowledge_is_a_503_and_the_next_one_goes_through(
    gateway,
):
    """The gateway's NATS user may not publish outside raw.*.ingest: the server refuses such
    a message without answering it. The batch answers 503 after the ack timeout instead of
    holding the request, and the next batch is published on a fresh connection. The batch
    is larger than the 4,000 unacknowledged messages after which the NATS client waits for
    room without any timeout."""
    import asyncio

    from mlsec_platform.catalog.sources import EVENT_DOMAINS
    from mlsec_platform.gateway.publisher import EventPublisher, MessageServerUnavailable
    from mlsec_platform.sources.event_batch import check_events

    services = gateway.server.app.state.services
    body = json.dumps([_event() for _ in range(5000)]).encode()
    batch = check_events(body, EVENT_DOMAINS["order_status"], 1 << 20)

    async def scenario():
        publisher = EventPublisher(services.nats_url, services.nats_credentials, ack_timeout=1.0)
        try:
            started = time.monotonic()
            with pytest.raises(MessageServerUnavailable, match="did not acknowledge"):
                # Bounded here only so that a publisher that waits for ever fails the test.
                await asyncio.wait_for(
                    publisher.publish("not.an.ingest.subject", batch.messages()), timeout=30
                )
            refused_after = time.monotonic() - started
            return refused_after, await publisher.publish(
                "raw.order_status.ingest", batch.messages()
            )
        finally:
            await publisher.close()

    try:
        refused_after, published = asyncio.run(scenario())
    finally:
        batch.close()
    assert refused_after < 10, refused_after  # the ack timeout (1 s), not the test's 30 s
    assert (published.count, published.duplicates) == (5000, 0)
