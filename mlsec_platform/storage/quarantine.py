"""Quarantine: refused input kept with its reason, listed, and sent through the gateway again.

One layout for every stage that refuses input (the gateway, the connectors):
``<stage>/<kind>/<id>/payload`` and ``.../reason.json`` in the quarantine bucket. Keys hold
only ids the platform made: a source or domain name is caller text until it is checked (``..``,
backslashes, NUL or a name over S3's 1,024-byte key limit would make the object unstorable), so
it lives in the reason record instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone


@dataclass(frozen=True)
class QuarantineEntry:
    quarantine_id: str
    kind: str  # file or events
    name: str  # source or domain
    stage: str  # gateway or connector
    status: int | None
    reason: str
    prefix: str


def keep(
    lake: S3LakeResource,
    *,
    stage: str,
    kind: str,
    name: str,
    entry_id: str,
    payload: bytes,
    record: dict,
) -> str:
    """Store the refused payload and its reason record; returns the entry's prefix."""
    prefix = f"{stage}/{kind}/{entry_id}"
    client = lake.client()
    bucket = lake.bucket(Zone.QUARANTINE)
    client.put_object(Bucket=bucket, Key=f"{prefix}/payload", Body=payload)
    client.put_object(
        Bucket=bucket,
        Key=f"{prefix}/reason.json",
        Body=json.dumps({"name": name, **record}, indent=2, default=str).encode(),
        ContentType="application/json",
    )
    return prefix


def list_quarantine(lake: S3LakeResource) -> list[QuarantineEntry]:
    s3 = lake.client()
    bucket = lake.bucket(Zone.QUARANTINE)
    entries = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/reason.json"):
                continue
            prefix = obj["Key"].removesuffix("/reason.json")
            parts = prefix.split("/")
            record = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            # Entries named by key (the quality gate's <stage>/<kind>/<dataset>/<run>, and
            # entries kept before keys were ids only) carry their name as the third part.
            name = record.get("name") or (parts[2] if len(parts) > 3 else "")
            entries.append(
                QuarantineEntry(
                    parts[-1],
                    parts[1],
                    name,
                    parts[0],
                    record.get("status"),
                    record["reason"],
                    prefix,
                )
            )
    return sorted(entries, key=lambda e: e.quarantine_id)


def resubmit(
    lake: S3LakeResource, entry: QuarantineEntry, gateway_url: str, token: str
) -> httpx.Response:
    """Send the kept payload to the gateway again: every check runs anew."""
    body = (
        lake.client()
        .get_object(Bucket=lake.bucket(Zone.QUARANTINE), Key=f"{entry.prefix}/payload")["Body"]
        .read()
    )
    if entry.kind == "file":
        request = ("PUT", f"{gateway_url}/v1/files/{entry.name}")
    else:
        request = ("POST", f"{gateway_url}/v1/events/{entry.name}")
    return httpx.request(
        *request,
        content=body,
        headers={"Authorization": f"Bearer {token}", "X-Resubmitted-From": entry.quarantine_id},
        timeout=300,
    )


EXCLUSIONS = "exclusions"


def exclude_batch(lake: S3LakeResource, *, source: str, batch_id: str, record: dict) -> str:
    """Keep a Raw batch out of the curated zones (after its rows failed a quality gate).

    Raw stays immutable; Silver skips the batch from its next materialization on. Returns the
    marker's key in the quarantine bucket.
    """
    key = f"{EXCLUSIONS}/{source}/{batch_id}.json"
    lake.client().put_object(
        Bucket=lake.bucket(Zone.QUARANTINE),
        Key=key,
        Body=json.dumps({"source": source, "batch_id": batch_id, **record}, indent=2).encode(),
        ContentType="application/json",
    )
    return key


def excluded_batches(lake: S3LakeResource, source: str) -> set[str]:
    """Raw batches of ``source`` an operator excluded from curation."""
    client = lake.client()
    prefix = f"{EXCLUSIONS}/{source}/"
    found: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=lake.bucket(Zone.QUARANTINE), Prefix=prefix
    ):
        for obj in page.get("Contents", []):
            found.add(obj["Key"][len(prefix) :].removesuffix(".json"))
    return found
