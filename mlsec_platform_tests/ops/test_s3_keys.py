"""`mlsec rotate s3-keys` on the embedded SeaweedFS: the identity's new key works at once and
its old key is refused at once (the IAM path of ``stack/bootstrap/s3_users.py``)."""

from __future__ import annotations

from mlsec_platform.ops.s3_keys import rotate_identity_keys
from mlsec_platform.settings import Zone
from mlsec_platform_tests.helpers import s3_as, s3_error_code, s3_keys_of


def test_a_rotated_key_is_refused_and_the_new_one_works(settings, endpoints):
    bucket = settings.bucket(Zone.GOLD)  # the auditor may list it
    before = s3_as("auditor", settings, endpoints)
    assert s3_error_code(lambda: before.list_objects_v2(Bucket=bucket, MaxKeys=1)) is None
    said: list[str] = []
    rotated = rotate_identity_keys(settings, ["auditor"], said.append)
    after = s3_as("auditor", settings, endpoints)
    assert after._request_signer._credentials.access_key == rotated["auditor"]
    assert s3_error_code(lambda: after.list_objects_v2(Bucket=bucket, MaxKeys=1)) is None
    assert s3_error_code(lambda: before.list_objects_v2(Bucket=bucket, MaxKeys=1)) == (
        "InvalidAccessKeyId"
    )
    assert said == [f"auditor    new key {rotated['auditor']}, old keys deleted"]


def test_the_erasers_key_rotates_and_only_an_erasure_reads_the_new_one(settings, endpoints):
    """The eraser has no AppRole: the rotation stores its new key where the operator's `erase`
    token reads it, and the old key stops at once."""
    bucket = settings.bucket(Zone.TOKENS)
    before = s3_as("eraser", settings, endpoints)
    assert s3_error_code(lambda: before.list_objects_v2(Bucket=bucket, MaxKeys=1)) is None
    rotated = rotate_identity_keys(settings, ["eraser"], lambda _: None)
    assert s3_keys_of("eraser", settings, endpoints)["access_key_id"] == rotated["eraser"]
    after = s3_as("eraser", settings, endpoints)
    assert s3_error_code(lambda: after.list_objects_v2(Bucket=bucket, MaxKeys=1)) is None
    assert s3_error_code(lambda: before.list_objects_v2(Bucket=bucket, MaxKeys=1)) == (
        "InvalidAccessKeyId"
    )
