"""Per-identity S3 users and keys, through whichever admin API the S3 server speaks.

Two servers' admin APIs, chosen by ``MLSEC_S3_USER_ADMIN``, serve the same provisioning
(``s3.py``): one user per workload identity, bound to the identity's policy file
(``identities/policies/s3/<name>.json``, the same JSON for both), and keys minted, listed and
deleted so that rotation can add a key, store it in OpenBao and then delete the old one.

* ``iam``: the AWS IAM API (SeaweedFS, AWS S3, Ceph RGW): a user ``mlsec-<identity>`` with an
  inline policy, and access keys of that user.
* ``minio``: MinIO's admin API through the ``minio`` package's ``MinioAdmin``. MinIO has no
  second key for a user (its access key is the user's name), so each key is a user of its own,
  ``mlsec-<identity>-<12 hex>``, attached to the identity's policy ``mlsec-<identity>-zones``;
  deleting the key deletes that user, which revokes it at once, as deleting an IAM key does.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.identities.catalog import Identity


@dataclass(frozen=True)
class S3Key:
    access_key_id: str
    secret_access_key: str


class S3Users(Protocol):
    """What provisioning and rotation need from an S3 server's user admin."""

    def ensure_user(self, identity: Identity, bucket_prefix: str) -> None:
        """The identity exists and its policy is the one in its policy file (idempotent)."""

    def key_ids(self, identity: str) -> set[str]:
        """Access key ids the identity holds now."""

    def mint_key(self, identity: str) -> S3Key:
        """A new key for the identity, beside the ones it holds."""

    def delete_key(self, identity: str, key_id: str) -> None:
        """Revoke one of the identity's keys."""


def user_name(identity: str) -> str:
    return f"mlsec-{identity}"


def policy_name(identity: str) -> str:
    return f"{user_name(identity)}-zones"


class IamUsers:
    """The AWS IAM API (boto3's ``iam`` client against the S3 server's endpoint)."""

    def __init__(self, iam: Any) -> None:
        self._iam = iam

    def ensure_user(self, identity: Identity, bucket_prefix: str) -> None:
        name = user_name(identity.name)
        try:
            self._iam.get_user(UserName=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchEntity", "NoSuchEntityException"):
                raise
            self._iam.create_user(UserName=name)
        self._iam.put_user_policy(
            UserName=name,
            PolicyName=policy_name(identity.name),
            PolicyDocument=json.dumps(identity.s3_policy(bucket_prefix)),
        )

    def key_ids(self, identity: str) -> set[str]:
        listed = self._iam.list_access_keys(UserName=user_name(identity))["AccessKeyMetadata"]
        return {k["AccessKeyId"] for k in listed}

    def mint_key(self, identity: str) -> S3Key:
        key = self._iam.create_access_key(UserName=user_name(identity))["AccessKey"]
        return S3Key(key["AccessKeyId"], key["SecretAccessKey"])

    def delete_key(self, identity: str, key_id: str) -> None:
        self._iam.delete_access_key(UserName=user_name(identity), AccessKeyId=key_id)


#: MinIO takes secret keys of 8 to 40 characters; 30 random bytes are 40 in URL-safe base64.
_MINIO_SECRET_BYTES = 30


class MinioUsers:
    """MinIO's admin API: a user per key, attached to the identity's canned policy."""

    def __init__(self, admin: Any) -> None:
        self._admin = admin

    @classmethod
    def connect(
        cls,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str,
        *,
        ca_file: Path | None = None,
    ) -> MinioUsers:
        """The admin API at ``endpoint``; over https, the server verified against
        ``ca_file`` (the system's CAs when None)."""
        import urllib3
        from minio import MinioAdmin
        from minio.credentials import StaticProvider

        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ConfigurationError(f"S3 endpoint {endpoint!r} is not an http(s) URL")
        admin = MinioAdmin(
            endpoint=url.netloc,
            credentials=StaticProvider(access_key, secret_key),
            region=region,
            secure=url.scheme == "https",
            http_client=urllib3.PoolManager(
                cert_reqs="CERT_REQUIRED",
                ca_certs=str(ca_file) if ca_file else None,
                timeout=urllib3.Timeout(connect=5, read=60),
                retries=urllib3.Retry(total=3, backoff_factor=0.2),
            )
            if url.scheme == "https"
            else None,
        )
        return cls(admin)

    def ensure_user(self, identity: Identity, bucket_prefix: str) -> None:
        # The policy is the identity's; its keys (users) are attached to it when minted, so
        # updating the policy here updates every key the identity holds.
        self._admin.policy_add(policy_name(identity.name), policy=identity.s3_policy(bucket_prefix))

    def key_ids(self, identity: str) -> set[str]:
        users = json.loads(self._admin.user_list() or "{}")
        prefix = f"{user_name(identity)}-"
        return {name for name in users if name.startswith(prefix)}

    def mint_key(self, identity: str) -> S3Key:
        key = S3Key(
            f"{user_name(identity)}-{secrets.token_hex(6)}",
            secrets.token_urlsafe(_MINIO_SECRET_BYTES),
        )
        self._admin.user_add(key.access_key_id, key.secret_access_key)
        try:
            self._admin.attach_policy([policy_name(identity)], user=key.access_key_id)
        except Exception:
            # A key without its policy would be a user MinIO denies everything to; not kept.
            self._admin.user_remove(key.access_key_id)
            raise
        return key

    def delete_key(self, identity: str, key_id: str) -> None:
        if not key_id.startswith(f"{user_name(identity)}-"):
            raise ValueError(f"{key_id!r} is not a key of {identity!r}")
        self._admin.user_remove(key_id)
