"""Zone buckets and per-identity S3 users, minted through the S3 server's admin API
(the AWS IAM API or MinIO's, ``s3_users.py``).

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

Per-batch keys would close it on SeaweedFS too (but for what a key wrote itself while it
lives), probed (``test_raw_immutable.py``): a user whose inline policy allows ``s3:PutObject``
only on ``<source>/_batch_id=<id>/*`` and ``<source>/_delta_log/<next version>.json`` commits a
delta-rs append and is refused every other key (other batches, other log entries, checkpoints,
other buckets; CopyObject too). Its key works on the first request after CreateAccessKey and
is refused on the first one after DeleteAccessKey; mint and delete took about 0.15 and 0.25 s
of IAM calls (load 11). Not built: no process holds the S3 admin credential while runs go on
(only bootstrap and `mlsec rotate s3-keys` read it, and exit). A minting service would hold
it, give one live key per table (two keys for one version would let the loser overwrite the
winner's log entry), delete each key after the commit or past a short TTL, and checkpoint Raw
tables itself: a batch key cannot, and without checkpoints opening a 400-version table took
1.6 to 1.9 s against 0.02 to 0.04 s (load 11 to 16).
"""

from __future__ import annotations

from pathlib import Path

import boto3
import hvac
from botocore.config import Config

from mlsec_platform.identities.catalog import S3_IDENTITIES
from mlsec_platform.settings import PlatformSettings, Zone
from mlsec_platform.stack.bootstrap.s3_users import IamUsers, MinioUsers, S3Users
from mlsec_platform.stack.bootstrap.vault import read_kv, write_kv

BOTO_CONFIG = Config(
    s3={"addressing_style": "path"},
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=5,
    read_timeout=60,
)


def admin_clients(endpoint: str, admin: dict, region: str, ca_file: Path):
    common = {
        "endpoint_url": endpoint,
        "verify": str(ca_file),
        "aws_access_key_id": admin["access_key"],
        "aws_secret_access_key": admin["secret_key"],
        "region_name": region,
        "config": BOTO_CONFIG,
    }
    return boto3.client("s3", **common), boto3.client("iam", **common)


def user_admin(settings: PlatformSettings, endpoint: str, admin: dict) -> S3Users:
    """The S3 server's user admin API, as ``s3_user_admin`` names it (``s3_users.py``)."""
    if settings.s3_user_admin == "minio":
        return MinioUsers.connect(
            endpoint,
            admin["access_key"],
            admin["secret_key"],
            settings.s3_region,
            ca_file=settings.server_ca("s3"),
        )
    return IamUsers(admin_clients(endpoint, admin, settings.s3_region, settings.server_ca("s3"))[1])


def kv_path(identity: str) -> str:
    return f"s3/{identity}"


def bootstrap_s3(
    vault: hvac.Client, settings: PlatformSettings, endpoint: str, admin: dict
) -> None:
    s3, _ = admin_clients(endpoint, admin, settings.s3_region, settings.server_ca("s3"))
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for zone in Zone:
        bucket = settings.bucket(zone)
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    ensure_identity_keys(vault, user_admin(settings, endpoint, admin), settings.bucket_prefix)


def ensure_identity_keys(vault: hvac.Client, users: S3Users, bucket_prefix: str) -> None:
    """Every S3 identity exists with its policy and holds the key OpenBao has for it: a key
    lost on either side (OpenBao's copy gone, or the server no longer knowing it) is replaced."""
    for identity in S3_IDENTITIES:
        users.ensure_user(identity, bucket_prefix)
        stored = read_kv(vault, kv_path(identity.name))
        if stored is None or stored.get("access_key_id") not in users.key_ids(identity.name):
            rotate_s3_key(vault, users, identity.name)


def rotate_s3_key(vault: hvac.Client, users: S3Users, identity: str) -> str:
    """Mint a new key, store it in OpenBao, then delete every older key. Returns the new key id."""
    old = users.key_ids(identity)
    key = users.mint_key(identity)
    write_kv(
        vault,
        kv_path(identity),
        {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key},
    )
    for key_id in sorted(old):
        users.delete_key(identity, key_id)
    return key.access_key_id
