"""Putting a large object from a file in parts (S3 multipart), so the writer never holds it.

An upload's object appears whole or not at all: the parts are invisible until the upload is
completed, and a failure aborts it, so a reader (the landing sensor) never meets half a file
and the store keeps no orphan parts.
"""

from __future__ import annotations

from typing import BinaryIO

#: Size of one part: what the writer holds at a time (S3 wants at least 5 MiB but the last).
PART_BYTES = 5 << 20


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
    try:
        parts, size = [], 0
        while part:  # one part held at a time
            number = len(parts) + 1
            answer = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=part
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            size += len(part)
            part = body.read(PART_BYTES)
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise
    return size
