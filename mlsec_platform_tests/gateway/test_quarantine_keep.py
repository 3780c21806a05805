"""What the gateway keeps of a refused body, and the cap on how fast quarantine may grow."""

from __future__ import annotations

import hashlib
import json
import logging

from mlsec_platform.settings import Zone
from mlsec_platform_tests.helpers import audit_events, audit_head, s3_admin

SELLERS_HEADER = b"seller_id,seller_zip_code_prefix,seller_city,seller_state\n"
PREFIX = "gateway/file/"  # keyed by id: the name is in reason.json


def _kept(supervisor, settings, qid: str) -> tuple[bytes | None, dict]:
    admin = s3_admin(supervisor, settings)
    bucket = settings.bucket(Zone.QUARANTINE)
    listing = admin.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}{qid}/")
    keys = {o["Key"] for o in listing.get("Contents", [])}
    payload = None
    if f"{PREFIX}{qid}/payload" in keys:
        payload = admin.get_object(Bucket=bucket, Key=f"{PREFIX}{qid}/payload")["Body"].read()
    record = {}
    if f"{PREFIX}{qid}/reason.json" in keys:
        record = json.loads(
            admin.get_object(Bucket=bucket, Key=f"{PREFIX}{qid}/reason.json")["Body"].read()
        )
    return payload, record


def test_an_over_cap_body_of_unknown_length_keeps_only_its_first_bytes(
    gateway, uploader, settings, supervisor, monkeypatch
):
    monkeypatch.setattr(settings, "gateway_max_file_bytes", 64 * 1024)
    body = SELLERS_HEADER + b"s,01001,x,SP\n" * 20_000  # about 260 KB, sent chunked

    def chunks():
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = gateway.put("/v1/files/olist_sellers", content=chunks(), headers=uploader)
    assert response.status_code == 413, response.text
    assert "larger than 65536 bytes" in response.json()["reason"]
    payload, record = _kept(supervisor, settings, response.json()["quarantine_id"])
    keep = settings.gateway_quarantine_keep_bytes
    assert payload == body[:keep]
    assert record["truncated"] is True and record["sha256"] == hashlib.sha256(payload).hexdigest()


def test_quarantine_growth_is_capped_with_an_alert(
    gateway, uploader, settings, supervisor, superuser_dsn, monkeypatch, caplog
):
    growth = gateway.server.app.state.services.quarantine_growth
    bad = SELLERS_HEADER + b"s1,01001\n" + b"x" * 4000  # ragged: refused, about 4 KB
    # Room for one more refused body and its record in this hour, not for two.
    monkeypatch.setattr(
        settings, "gateway_quarantine_max_bytes_per_hour", growth.used() + len(bad) + 2048
    )
    seq = audit_head(superuser_dsn)
    with caplog.at_level(logging.WARNING, logger="mlsec_platform.gateway"):
        first = gateway.put("/v1/files/olist_sellers", content=bad, headers=uploader)
        second = gateway.put("/v1/files/olist_sellers", content=bad, headers=uploader)
        third = gateway.put("/v1/files/olist_sellers", content=bad, headers=uploader)
    # Still refused with their reason: the cap is on what is kept, not on answering.
    assert [r.status_code for r in (first, second, third)] == [422] * 3
    kept_first, _ = _kept(supervisor, settings, first.json()["quarantine_id"])
    assert kept_first == bad
    for over in (second, third):
        payload, record = _kept(supervisor, settings, over.json()["quarantine_id"])
        assert (payload, record) == (None, {})  # nothing stored once over the cap
        assert "not kept: quarantine is over its growth cap" in over.json()["reason"]
    alerts = [r for r in caplog.records if "growth cap" in r.getMessage()]
    assert len(alerts) == 1  # once per window, not once per refusal
    events = audit_events(superuser_dsn, "ingest.rejected", seq)
    assert [e["kept"] for e in events] == [True, False, False]
    [cap_event] = audit_events(superuser_dsn, "quarantine.growth_capped", seq)
    assert cap_event["limit_bytes_per_hour"] == settings.gateway_quarantine_max_bytes_per_hour
