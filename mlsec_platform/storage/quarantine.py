"""Quarantine: refused input kept with its reason, listed, and sent through the gateway again.

One layout for every stage that refuses input (the gateway, the connectors):
``<stage>/<kind>/<id>/payload`` and ``.../reason.json`` in the quarantine bucket. Keys hold
only ids the platform made: a source or domain name is caller text until it is checked (``..``,
backslashes, NUL or a name over S3's 1,024-byte key limit would make the object unstorable), so
it lives in the reason record instead.
"""

from __future__ import annotations

import io
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.streamed import put_streamed


@dataclass(frozen=True)
class QuarantineEntry:
    quarantine_id: str
    kind: str  # file or events
    name: str  # source or domain
    stage: str  # gateway or connector
    status: int | None
    reason: str
    prefix: str
    #: Only the input's first bytes were kept (refused before it was read whole).
    truncated: bool = False


def keep(
    lake: S3LakeResource,
    *,
    stage: str,
    kind: str,
    name: str,
    entry_id: str,
    payload: bytes | BinaryIO,
    record: dict,
) -> str:
    """Store the refused payload and its reason record; returns the entry's prefix.

    A payload in a file is put from its start in parts, never read whole into memory."""
    prefix = f"{stage}/{kind}/{entry_id}"
    client = lake.client()
    bucket = lake.bucket(Zone.QUARANTINE)
    if isinstance(payload, bytes):
        client.put_object(Bucket=bucket, Key=f"{prefix}/payload", Body=payload)
    else:
        payload.seek(0)
        put_streamed(client, bucket, f"{prefix}/payload", payload)
    client.put_object(
        Bucket=bucket,
        Key=f"{prefix}/reason.json",
        Body=json.dumps({"name": name, **record}, indent=2, default=str).encode(),
        ContentType="application/json",
    )
    return prefix


class GrowthCap:
    """How many bytes a writer may add to quarantine per hour (``limit`` is read at each
    call, so a changed setting takes effect at once).

    Refused input is kept as evidence, but whoever can send refused input could otherwise
    fill the disk with it: past the cap, :meth:`take` says no until the next hour.
    """

    WINDOW_SECONDS = 3600.0

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._window = -1
        self._used = 0
        self._refused_in = -2  # the last window in which a take was refused

    def _roll(self) -> int:
        window = int(time.monotonic() // self.WINDOW_SECONDS)
        if window != self._window:
            self._window, self._used = window, 0
        return window

    def used(self) -> int:
        """Bytes taken in the current hour."""
        with self._lock:
            self._roll()
            return self._used

    def take(self, size: int) -> tuple[bool, bool]:
        """(granted, first refusal of this hour): charge ``size`` bytes if they fit."""
        with self._lock:
            window = self._roll()
            if self._used + size <= self._limit():
                self._used += size
                return True, False
            first = self._refused_in != window
            self._refused_in = window
            return False, first


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
                    bool(record.get("truncated", False)),
                )
            )
    return sorted(entries, key=lambda e: e.quarantine_id)


#: Failing rows `quarantine show` reads at most.
MAX_SHOWN_ROWS = 100


@dataclass(frozen=True)
class EntryContents:
    """What an entry holds: its reason record, its payload's size and, for a quality gate's
    entry, its first failing rows and its failure cases."""

    record: dict
    payload_bytes: int
    rows: pa.Table | None
    failure_cases: list[dict]


def read_entry(lake: S3LakeResource, entry: QuarantineEntry, rows: int) -> EntryContents:
    """Read ``entry``; at most ``rows`` failing rows are read into memory."""
    s3, bucket = lake.client(), lake.bucket(Zone.QUARANTINE)
    record = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{entry.prefix}/reason.json")["Body"].read()
    )
    size = s3.head_object(Bucket=bucket, Key=f"{entry.prefix}/payload")["ContentLength"]
    table, cases = None, []
    if entry.stage == "gate":  # payload: the failing rows as Parquet (quality/gates.py)
        body = s3.get_object(Bucket=bucket, Key=f"{entry.prefix}/payload")["Body"].read()
        table = pq.read_table(io.BytesIO(body)).slice(0, rows)
        try:
            found = s3.get_object(Bucket=bucket, Key=f"{entry.prefix}/failure_cases.parquet")
        except s3.exceptions.NoSuchKey:
            found = None
        if found is not None:
            cases = pq.read_table(io.BytesIO(found["Body"].read())).to_pylist()
    return EntryContents(record, size, table, cases)


def resubmit(
    lake: S3LakeResource,
    entry: QuarantineEntry,
    gateway_url: str,
    token: str,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Response:
    """Send the kept payload to the gateway again: every check runs anew (``verify``: the
    TLS context with the client certificate ``token`` is bound to)."""
    # Streamed from the store to the gateway: a large payload is never held here either.
    body = (
        lake.client()
        .get_object(Bucket=lake.bucket(Zone.QUARANTINE), Key=f"{entry.prefix}/payload")["Body"]
        .iter_chunks(1 << 20)
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
        verify=verify,
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
