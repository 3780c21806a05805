"""Putting a large object from a file in parts (S3 multipart), so the writer never holds it.

An upload's object appears whole or not at all: the parts are invisible until the upload is
completed, and a failure aborts it, so a reader (the landing sensor) never meets half a file
and the store keeps no orphan parts.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import BinaryIO

#: Size of one part (S3 wants at least 5 MiB but the last).
PART_BYTES = 5 << 20
#: Parts sent at once: a part's round trip overlaps the next one's (one at a time, an 84 MB
#: upload spent about 0.5 s more in the gateway), while the writer holds at most this many
#: parts and the one it reads.
PARTS_IN_FLIGHT = 2


def put_streamed(
    client,
    bucket: str,
    key: str,
    body: BinaryIO,
    *,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Put the rest of ``body`` (from its current position) at ``key``; returns its size.

    A body of at most one part is one PUT; a larger one is a multipart upload, aborted if
    any part fails."""
    extra = {"Metadata": metadata or {}}
    if content_type:
        extra["ContentType"] = content_type
    part = body.read(PART_BYTES)
    if len(part) < PART_BYTES:
        client.put_object(Bucket=bucket, Key=key, Body=part, **extra)
        return len(part)
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]

    def send(number: int, data: bytes) -> dict:
        answer = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    in_flight: set[Future] = set()
    parts, size = [], 0
    with ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part") as pool:
        try:
            while part:
                if len(in_flight) >= PARTS_IN_FLIGHT:  # bounded: one finishes before the next
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    parts += [future.result() for future in done]
                in_flight.add(pool.submit(send, len(parts) + len(in_flight) + 1, part))
                size += len(part)
                part = body.read(PART_BYTES)
            parts += [future.result() for future in in_flight]
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": sorted(parts, key=lambda p: p["PartNumber"])},
            )
        except BaseException:
            for future in in_flight:
                future.cancel()
            wait(in_flight)  # no part is sent after the abort
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            raise
    return size
