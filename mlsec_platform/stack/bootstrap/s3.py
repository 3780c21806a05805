"""Zone buckets and per-identity S3 users, minted through the AWS IAM API.

OpenBao has no AWS secrets engine, so the platform mints each identity's keys itself with the
S3 admin credentials, keeps them in OpenBao KV (``mlsec/s3/<identity>``) and rotates them:
new key, update OpenBao, delete the old key (revocation is immediate).

Raw is append-only by these policies as far as the embedded SeaweedFS (4.48) can enforce it,
probed against the running server (``defs/raw/test_raw_immutable.py``): no identity but
``lifecycle`` holds ``s3:DeleteObject`` on Raw, so single and multi-object deletes of data
files and ``_delta_log`` entries are refused; a conditional create (``If-None-Match: *``, as
delta-rs commits) over an existing key gets 412. An unconditional PUT over an existing key
by the connector is still accepted: SeaweedFS has no ``s3:if-none-match`` condition key,
takes ``Allow`` only in user policies, cannot see in a bucket policy whether a key exists,
binds filer WORM rules to FUSE mounts only, and under Object Lock keeps old versions but
accepts a new current one. On AWS S3 or MinIO a bucket policy denying ``s3:PutObject`` when
``s3:if-none-match`` is absent closes that gap (``_delta_log/_last_checkpoint`` excepted,
which delta-rs rewrites).
"""

from __future__ import annotations

import json

import boto3
import hvac
from botocore.config import Config
from botocore.exceptions import ClientError

from mlsec_platform.identities.catalog import S3_IDENTITIES, Identity
from mlsec_platform.settings import PlatformSettings, Zone
from mlsec_platform.stack.bootstrap.vault import read_kv, write_kv

BOTO_CONFIG = Config(
    s3={"addressing_style": "path"},
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=5,
    read_timeout=60,
)


def admin_clients(endpoint: str, admin: dict, region: str):
    common = {
        "endpoint_url": endpoint,
        "aws_access_key_id": admin["access_key"],
        "aws_secret_access_key": admin["secret_key"],
        "region_name": region,
        "config": BOTO_CONFIG,
    }
    return boto3.client("s3", **common), boto3.client("iam", **common)


def kv_path(identity: str) -> str:
    return f"s3/{identity}"


def bootstrap_s3(
    vault: hvac.Client, settings: PlatformSettings, endpoint: str, admin: dict
) -> None:
    s3, iam = admin_clients(endpoint, admin, settings.s3_region)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for zone in Zone:
        bucket = settings.bucket(zone)
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    for identity in S3_IDENTITIES:
        _ensure_user(iam, identity, settings.bucket_prefix)
        stored = read_kv(vault, kv_path(identity.name))
        active = {k["AccessKeyId"] for k in _keys(iam, identity.name)}
        if stored is None or stored.get("access_key_id") not in active:
            rotate_s3_key(vault, iam, identity.name)


def _user_name(identity: str) -> str:
    return f"mlsec-{identity}"


def _ensure_user(iam, identity: Identity, bucket_prefix: str) -> None:
    name = _user_name(identity.name)
    try:
        iam.get_user(UserName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("NoSuchEntity", "NoSuchEntityException"):
            raise
        iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName=f"{name}-zones",
        PolicyDocument=json.dumps(identity.s3_policy(bucket_prefix)),
    )


def _keys(iam, identity: str) -> list[dict]:
    return iam.list_access_keys(UserName=_user_name(identity))["AccessKeyMetadata"]


def rotate_s3_key(vault: hvac.Client, iam, identity: str) -> str:
    """Mint a new key, store it in OpenBao, then delete every older key. Returns the new key id."""
    old = [k["AccessKeyId"] for k in _keys(iam, identity)]
    key = iam.create_access_key(UserName=_user_name(identity))["AccessKey"]
    write_kv(
        vault,
        kv_path(identity),
        {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]},
    )
    for key_id in old:
        iam.delete_access_key(UserName=_user_name(identity), AccessKeyId=key_id)
    return key["AccessKeyId"]
