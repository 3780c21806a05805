"""Objects outside Delta that may quote a data subject: landing batches (kept under
``processed/`` after ingestion, or still ``incoming/``) and quarantined input (payloads and
their reason records, the quality gate's failing rows).

Every object is searched for the subject's strings (identifier values, keys, tokens), as
UTF-8 and as JSON escapes them. One that quotes any is rewritten without them, in place:

* a reason record (``*.json``): each string quoting the subject has it replaced by
  ``[erased]``;
* a Parquet file (the gate's failing rows): the rows quoting the subject are dropped;
* anything else (CSV uploads, JSON lines of events): the lines quoting it are dropped.

A landing batch rewritten keeps its metadata, with the new content's SHA-256 (what the
connector checks) and the erasure that changed it. Large objects are read and written in
parts, never held whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlsec_platform.privacy.erasure.scope import REDACTED
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.streamed import put_streamed

CHUNK = 1 << 20
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class ObjectErasure:
    """What erasing one object did, for the receipt (keys hold platform-made ids only)."""

    place: str
    #: Lines (text), rows (Parquet) or strings (reason records) that quoted the subject.
    removed: int

    @property
    def changed(self) -> bool:
        return self.removed > 0

    def receipt_entry(self) -> dict:
        return {"place": self.place, "kind": "object", "parts_removed": self.removed}


def _forms(needles: list[str]) -> list[bytes]:
    """Each needle as UTF-8 and as JSON writes it (``\\u00e3`` for ``ã``), longest first."""
    forms = {n.encode() for n in needles} | {json.dumps(n)[1:-1].encode() for n in needles}
    return sorted(forms, key=lambda f: (-len(f), f))


class _Finder:
    def __init__(self, needles: list[str]) -> None:
        self.forms = _forms(needles)
        self.pattern = re.compile(b"|".join(re.escape(f) for f in self.forms))
        self.overlap = max((len(f) for f in self.forms), default=1) - 1

    def in_stream(self, body) -> bool:
        tail = b""
        for chunk in body.iter_chunks(CHUNK):
            window = tail + chunk
            if self.pattern.search(window):
                return True
            tail = window[-self.overlap :] if self.overlap else b""
        return False


def erase_objects(
    lake: S3LakeResource, zone: Zone, needles: list[str], erasure_id: str
) -> list[ObjectErasure]:
    """Rewrite every object of ``zone`` that quotes one of ``needles``."""
    if not needles:
        return []
    finder, s3, bucket = _Finder(needles), lake.client(), lake.bucket(zone)
    done = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if not finder.in_stream(s3.get_object(Bucket=bucket, Key=key)["Body"]):
                continue
            source = s3.get_object(Bucket=bucket, Key=key)
            if key.endswith(".json"):
                removed = _rewrite_record(s3, bucket, key, source, needles)
            else:
                removed = _rewrite_body(s3, bucket, key, source, finder, needles, erasure_id)
            done.append(ObjectErasure(f"{zone.value}/{key}", removed))
    return done


def _rewrite_record(s3, bucket: str, key: str, source: dict, needles: list[str]) -> int:
    record = json.loads(source["Body"].read())
    count = [0]

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for needle in needles:
                if needle in value:
                    count[0] += 1
                    value = value.replace(needle, REDACTED)
            return value
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        return value

    cleaned = clean(record)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(cleaned, indent=2, default=str).encode(),
        ContentType=source.get("ContentType") or "application/json",
    )
    return count[0]


def _rewrite_body(s3, bucket, key, source, finder: _Finder, needles, erasure_id) -> int:
    body = source["Body"]
    head = body.read(len(PARQUET_MAGIC))
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as out:
        if head == PARQUET_MAGIC:
            data = pq.read_table(io.BytesIO(head + body.read()))
            keep = _rows_without(data, needles)
            pq.write_table(data.filter(keep), out)
            removed = data.num_rows - int(pc.sum(keep).as_py() or 0)
        else:
            removed = _copy_lines_without(head, body, finder, out)
        digest = hashlib.sha256()
        out.seek(0)
        while block := out.read(CHUNK):
            digest.update(block)
        out.seek(0)
        metadata = dict(source.get("Metadata", {}))
        if "sha256" in metadata:
            metadata["sha256"] = digest.hexdigest()
        metadata["erased-by"] = erasure_id
        put_streamed(
            s3, bucket, key, out, content_type=source.get("ContentType"), metadata=metadata
        )
    return removed


def _rows_without(data: pa.Table, needles: list[str]) -> pa.Array:
    """True for each row that quotes none of ``needles`` in any text column."""
    keep = pa.array([True] * data.num_rows)
    for column in data.itercolumns():
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            continue
        for needle in needles:
            quoted = pc.fill_null(pc.match_substring(column, needle), False)
            keep = pc.and_(keep, pc.invert(quoted))
    return keep


def _copy_lines_without(head: bytes, body, finder: _Finder, out) -> int:
    removed, rest = 0, head
    for chunk in body.iter_chunks(CHUNK):
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            if finder.pattern.search(line):
                removed += 1
            else:
                out.write(line + b"\n")
    if rest:
        if finder.pattern.search(rest):
            removed += 1
        else:
            out.write(rest)
    return removed
