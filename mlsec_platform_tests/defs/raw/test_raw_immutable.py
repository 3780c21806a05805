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

The tests after them probe a design that needs no new server feature (per-batch keys, see
``stack/bootstrap/s3.py``): what such a key may write, that delta-rs commits with it (without
checkpointing), that a key minted for a version already taken commits nothing, and that a
deleted key is refused on the next request. While it lives, a batch key can still overwrite
what it wrote itself (its files and its log entry).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import boto3
import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable, PostCommitHookProperties, write_deltalake
from deltalake.exceptions import DeltaError

from mlsec_platform.defs.resources import build_resources
from mlsec_platform.identities.catalog import S3_IDENTITIES
from mlsec_platform.ops.drain import drain_landing
from mlsec_platform.resources.s3_lake import S3Credentials, lake_storage_options
from mlsec_platform.settings import Zone
from mlsec_platform.stack.bootstrap.s3 import BOTO_CONFIG, admin_clients
from mlsec_platform.storage.raw_writer import RAW_TABLE_CONFIGURATION
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


# A design that needs no server feature, probed here: the connector's standing keys would hold
# no s3:PutObject on Raw; each batch would get a key of its own whose policy allows PutObject
# only on keys that cannot exist yet (the batch's partition prefix and the next log entry),
# minted with the S3 admin API and deleted after the commit. These tests hold the server to
# what that design needs. The admin mints here, as the minting service would.


def _batch_key_policy(bucket: str, source: str, batch_id: str, version: int) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ThisBatchOnly",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": [
                    f"arn:aws:s3:::{bucket}/{source}/_batch_id={batch_id}/*",
                    f"arn:aws:s3:::{bucket}/{source}/_delta_log/{version:020d}.json",
                ],
            },
            {
                # delta-rs reads the log and lists the table before it commits.
                "Sid": "ReadRaw",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


class BatchKeys:
    """Mints batch keys as the minting service would (a user of its own, its policy, a key)
    with the S3 admin's IAM client, and deletes them."""

    def __init__(self, iam, bucket: str) -> None:
        self._iam, self._bucket = iam, bucket
        self._users: dict[str, str] = {}  # key id -> user

    def mint(self, source: str, batch_id: str, version: int) -> S3Credentials:
        user = f"mlsec-rawbatch-{uuid.uuid4().hex[:12]}"
        self._iam.create_user(UserName=user)
        policy = _batch_key_policy(self._bucket, source, batch_id, version)
        self._iam.put_user_policy(UserName=user, PolicyName=user, PolicyDocument=json.dumps(policy))
        key = self._iam.create_access_key(UserName=user)["AccessKey"]
        self._users[key["AccessKeyId"]] = user
        return S3Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def delete(self, key: S3Credentials) -> None:
        user = self._users.pop(key.access_key_id)
        self._iam.delete_access_key(UserName=user, AccessKeyId=key.access_key_id)
        self._iam.delete_user_policy(UserName=user, PolicyName=user)
        self._iam.delete_user(UserName=user)

    def delete_all(self) -> None:
        for key_id in list(self._users):
            self.delete(S3Credentials(key_id, ""))


@pytest.fixture
def batch_keys(supervisor, settings) -> Iterator[BatchKeys]:
    admin = supervisor.seaweedfs.admin_credentials()
    _, iam = admin_clients(
        supervisor.seaweedfs.endpoint, admin, settings.s3_region, settings.server_ca("s3")
    )
    keys = BatchKeys(iam, settings.bucket(Zone.RAW))
    yield keys
    keys.delete_all()


@pytest.fixture
def probe_table(supervisor, settings) -> Iterator[str]:
    """A Raw table of its own (removed after), so the session stack's sources stay as built."""
    source = f"rawlock_probe_{uuid.uuid4().hex[:8]}"
    yield source
    admin, bucket = s3_admin(supervisor, settings), settings.bucket(Zone.RAW)
    for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=source):
        for item in page.get("Contents", []):
            admin.delete_object(Bucket=bucket, Key=item["Key"])


def _client(creds: S3Credentials, settings, endpoints):
    return boto3.client(
        "s3",
        endpoint_url=endpoints.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=BOTO_CONFIG,
        verify=str(settings.server_ca("s3")),
    )


def _append(uri: str, creds: S3Credentials, endpoints, settings, batch_id: str, **hooks) -> None:
    rows = pa.table({"value": [1, 2, 3], "_batch_id": [batch_id] * 3})
    write_deltalake(
        uri,
        rows,
        mode="append",
        partition_by=["_batch_id"],
        configuration=hooks.pop("configuration", None),
        storage_options=lake_storage_options(endpoints.s3_endpoint, settings.s3_region, creds),
        post_commithook_properties=PostCommitHookProperties(**hooks) if hooks else None,
    )


def test_a_batch_key_commits_its_batch_and_writes_nothing_else(
    batch_keys, probe_table, supervisor, settings, endpoints
):
    bucket = settings.bucket(Zone.RAW)
    uri = f"s3://{bucket}/{probe_table}"
    first = batch_keys.mint(probe_table, "b0", 0)
    _append(uri, first, endpoints, settings, "b0", configuration=RAW_TABLE_CONFIGURATION)
    key = batch_keys.mint(probe_table, "b1", 1)
    _append(uri, key, endpoints, settings, "b1")
    admin = s3_admin(supervisor, settings)
    table = DeltaTable(
        uri, storage_options=lake_storage_options(endpoints.s3_endpoint, settings.s3_region, first)
    )
    assert table.version() == 1 and table.to_pyarrow_table().num_rows == 6

    s3 = _client(key, settings, endpoints)
    log = f"{probe_table}/_delta_log"
    refused = {
        "another batch's prefix": (bucket, f"{probe_table}/_batch_id=b0/x.parquet"),
        "a prefix extending its batch id": (bucket, f"{probe_table}/_batch_id=b1x/x.parquet"),
        "a committed log entry": (bucket, f"{log}/{0:020d}.json"),
        "a later log entry": (bucket, f"{log}/{2:020d}.json"),
        "a checkpoint": (bucket, f"{log}/{1:020d}.checkpoint.parquet"),
        "_last_checkpoint": (bucket, f"{log}/_last_checkpoint"),
        "another source": (bucket, f"{SOURCE}/_batch_id=b1/x.parquet"),
        "landing": (settings.bucket(Zone.LANDING), "x"),
    }
    answers = {
        name: s3_error_code(lambda b=b, k=k: s3.put_object(Bucket=b, Key=k, Body=b"x"))
        for name, (b, k) in refused.items()
    }
    assert answers == dict.fromkeys(refused, "AccessDenied")
    copy = s3_error_code(
        lambda: s3.copy_object(
            Bucket=bucket,
            Key=f"{log}/{0:020d}.json",
            CopySource={"Bucket": bucket, "Key": f"{log}/{1:020d}.json"},
        )
    )
    assert copy == "AccessDenied"
    own = admin.list_objects_v2(Bucket=bucket, Prefix=f"{probe_table}/_batch_id=b1/")
    assert (
        s3_error_code(lambda: s3.delete_object(Bucket=bucket, Key=own["Contents"][0]["Key"]))
        == "AccessDenied"
    )


def test_a_batch_key_for_a_version_already_taken_commits_nothing(
    batch_keys, probe_table, settings, endpoints
):
    """A key minted for version N cannot commit once N exists: delta-rs moves on to N+1,
    which the key does not cover, so the write fails and the table stays as it was."""
    uri = f"s3://{settings.bucket(Zone.RAW)}/{probe_table}"
    first = batch_keys.mint(probe_table, "b0", 0)
    _append(uri, first, endpoints, settings, "b0", configuration=RAW_TABLE_CONFIGURATION)
    stale = batch_keys.mint(probe_table, "b1", 0)
    with pytest.raises(OSError, match="lacked the necessary privileges"):
        _append(uri, stale, endpoints, settings, "b1")
    options = lake_storage_options(endpoints.s3_endpoint, settings.s3_region, first)
    assert DeltaTable(uri, storage_options=options).version() == 0


def test_a_batch_key_commit_must_not_checkpoint(batch_keys, probe_table, settings, endpoints):
    """delta-rs checkpoints after the commit of version v when v + 1 is a multiple of
    ``delta.checkpointInterval`` (100 by default), and rewrites ``_last_checkpoint``: a batch key
    refuses both, so the commit lands but the write raises. A batch's writer turns checkpoints
    off; a more privileged identity must write them (without any, opening a table reads every
    log entry)."""
    uri = f"s3://{settings.bucket(Zone.RAW)}/{probe_table}"
    every_second = {**RAW_TABLE_CONFIGURATION, "delta.checkpointInterval": "2"}
    first = batch_keys.mint(probe_table, "b0", 0)
    _append(uri, first, endpoints, settings, "b0", configuration=every_second)
    with pytest.raises(DeltaError, match="checkpoint"):
        _append(uri, batch_keys.mint(probe_table, "b1", 1), endpoints, settings, "b1")
    options = lake_storage_options(endpoints.s3_endpoint, settings.s3_region, first)
    assert DeltaTable(uri, storage_options=options).version() == 1  # committed all the same
    _append(uri, batch_keys.mint(probe_table, "b2", 2), endpoints, settings, "b2")
    key = batch_keys.mint(probe_table, "b3", 3)
    _append(uri, key, endpoints, settings, "b3", create_checkpoint=False)
    assert DeltaTable(uri, storage_options=options).version() == 3


def test_a_deleted_batch_key_is_refused_at_once(batch_keys, probe_table, settings, endpoints):
    key = batch_keys.mint(probe_table, "b0", 0)
    s3, bucket = _client(key, settings, endpoints), settings.bucket(Zone.RAW)
    target = f"{probe_table}/_batch_id=b0/x.parquet"
    assert s3_error_code(lambda: s3.put_object(Bucket=bucket, Key=target, Body=b"x")) is None
    batch_keys.delete(key)
    # The very next request: no propagation delay to wait out.
    denied = s3_error_code(lambda: s3.put_object(Bucket=bucket, Key=target, Body=b"y"))
    assert denied == "InvalidAccessKeyId"
