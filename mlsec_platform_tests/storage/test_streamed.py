"""A streamed put lands whole with its metadata, or not at all, on the real S3 server."""

from __future__ import annotations

import io
import os
import uuid

import pytest

from mlsec_platform.settings import Zone
from mlsec_platform.storage.streamed import PART_BYTES, put_streamed
from mlsec_platform_tests.helpers import s3_admin


class _BreaksAfter(io.BytesIO):
    """A body whose reading fails after ``parts`` parts (a disk error, a closed spool)."""

    def __init__(self, data: bytes, parts: int) -> None:
        super().__init__(data)
        self._reads_left = parts

    def read(self, size: int = -1) -> bytes:
        if self._reads_left == 0:
            raise OSError("the spool could not be read")
        self._reads_left -= 1
        return super().read(size)


def test_a_large_body_lands_whole_with_its_metadata(supervisor, settings):
    s3 = s3_admin(supervisor, settings)
    bucket, key = settings.bucket(Zone.LANDING), f"tests/{uuid.uuid4()}.csv"
    # Three parts, each different (parts go up at once: one out of place would show).
    body = os.urandom(2 * PART_BYTES + 256_000)
    size = put_streamed(s3, bucket, key, io.BytesIO(body), metadata={"sha256": "x"})
    try:
        stored = s3.get_object(Bucket=bucket, Key=key)
        assert size == len(body) and stored["Body"].read() == body
        assert stored["Metadata"] == {"sha256": "x"}
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def test_a_body_that_fails_midway_leaves_no_object_and_no_parts(supervisor, settings):
    s3 = s3_admin(supervisor, settings)
    bucket, key = settings.bucket(Zone.LANDING), f"tests/{uuid.uuid4()}.csv"
    body = _BreaksAfter(b"x" * (3 * PART_BYTES), parts=2)
    with pytest.raises(OSError, match="could not be read"):
        put_streamed(s3, bucket, key, body)
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=key)
    assert listing.get("KeyCount", 0) == 0
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u for u in uploads if u["Key"] == key] == []
