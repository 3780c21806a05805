"""Raw cannot be changed after commit: no workload identity's S3 keys delete or replace a
committed Raw object (data file or ``_delta_log`` entry); only ``lifecycle`` removes Raw data.

What the embedded SeaweedFS (4.48) enforces, found by probing it (see ``stack/bootstrap/s3.py``):
per-action IAM (an identity without ``s3:DeleteObject`` is refused every delete, single and
multi-object), and a conditional PUT (``If-None-Match: *``) over an existing key is refused
with 412. It does NOT refuse an unconditional PUT or CopyObject over an existing key from an
identity that holds ``s3:PutObject``: it has no ``s3:if-none-match`` policy condition key, its
IAM user policies take ``Allow`` only, bucket-policy conditions cannot see whether the key
exists, filer WORM rules bind only FUSE mounts, and Object Lock keeps old versions but still
accepts a new current one. Those overwrite tests are strict xfails: they start failing the day
the server (or the policy) refuses, and must then become plain tests.
"""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from mlsec_platform.defs.resources import build_resources
from mlsec_platform.identities.catalog import S3_IDENTITIES
from mlsec_platform.ops.drain import drain_landing
from mlsec_platform.settings import Zone
from mlsec_platform_tests.helpers import s3_admin, s3_as, s3_error_code

SOURCE = "olist_sellers"
WRITERS_AND_READERS = [i.name for i in S3_IDENTITIES if i.name != "lifecycle"]
OVERWRITE_GAP = (
    "SeaweedFS 4.48 accepts an unconditional PUT over an existing key from any identity "
    "holding s3:PutObject (no s3:if-none-match condition key, Allow-only user policies)"
)


def _commit_batch(settings, gateway, uploader, rows: int) -> str:
    """Upload ``rows`` unique sellers through the gateway and commit them with the connector."""
    tag = uuid.uuid4().hex[:8]
    lines = ["seller_id,seller_zip_code_prefix,seller_city,seller_state"]
    lines += [f"im-{tag}-{i:03d},{10000 + i},sao paulo,SP" for i in range(rows)]
    response = gateway.put(
        f"/v1/files/{SOURCE}", content=("\n".join(lines) + "\n").encode(), headers=uploader
    )
    assert response.status_code == 201, response.text
    batch = response.json()["batch_id"]
    runs = drain_landing(dg.DagsterInstance.ephemeral(), build_resources(settings), echo=print)
    assert [r.metadata["rows"] for r in runs if r.partition == batch] == [rows]
    return batch


@pytest.fixture(scope="module")
def committed(supervisor, settings, gateway, uploader) -> dict[str, str]:
    """A Raw batch committed by the real connector: one data file key and one log entry key."""
    batch = _commit_batch(settings, gateway, uploader, 20)
    admin = s3_admin(supervisor, settings)
    bucket = settings.bucket(Zone.RAW)
    data = admin.list_objects_v2(Bucket=bucket, Prefix=f"{SOURCE}/_batch_id={batch}/")
    log = admin.list_objects_v2(Bucket=bucket, Prefix=f"{SOURCE}/_delta_log/")
    entries = [o["Key"] for o in log["Contents"] if o["Key"].endswith(".json")]
    return {"data file": data["Contents"][0]["Key"], "log entry": sorted(entries)[-1]}


def _body(admin, bucket: str, key: str) -> bytes:
    return admin.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.parametrize("what", ["data file", "log entry"])
@pytest.mark.parametrize("identity", WRITERS_AND_READERS)
def test_no_workload_identity_deletes_a_committed_raw_object(
    identity, what, committed, supervisor, settings, endpoints
):
    admin, s3 = s3_admin(supervisor, settings), s3_as(identity, settings, endpoints)
    bucket, key = settings.bucket(Zone.RAW), committed[what]
    before = _body(admin, bucket, key)
    assert s3_error_code(lambda: s3.delete_object(Bucket=bucket, Key=key)) == "AccessDenied"
    # The multi-object delete answers 200 with an error per key; the object must stay.
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
    assert [e["Code"] for e in answer.get("Errors", [])] == ["AccessDenied"]
    assert not answer.get("Deleted")
    assert _body(admin, bucket, key) == before


@pytest.mark.parametrize("what", ["data file", "log entry"])
def test_a_conditional_create_over_a_committed_raw_object_is_refused(
    what, committed, supervisor, settings, endpoints
):
    """The connector's own writes (delta-rs) create with If-None-Match: *; the server holds it."""
    s3 = s3_as("connector", settings, endpoints)
    bucket, key = settings.bucket(Zone.RAW), committed[what]
    put = s3_error_code(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"x", IfNoneMatch="*"))
    assert put == "PreconditionFailed"


@pytest.mark.xfail(strict=True, reason=OVERWRITE_GAP)
@pytest.mark.parametrize("what", ["data file", "log entry"])
def test_the_connector_cannot_overwrite_a_committed_raw_object(
    what, committed, supervisor, settings, endpoints
):
    # The same bytes go back, so the session stack's Raw stays intact while the server
    # accepts the overwrite; a refusal is what the test asks for.
    admin, s3 = s3_admin(supervisor, settings), s3_as("connector", settings, endpoints)
    bucket, key = settings.bucket(Zone.RAW), committed[what]
    same = _body(admin, bucket, key)
    assert s3_error_code(lambda: s3.put_object(Bucket=bucket, Key=key, Body=same)) == (
        "AccessDenied"
    )


def test_the_connector_still_commits_new_raw_batches(committed, settings, gateway, uploader):
    """Refusing changes must not refuse appends: a second batch commits beside the first."""
    assert _commit_batch(settings, gateway, uploader, 3)
