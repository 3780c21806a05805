"""The S3 lake (one bucket per zone) seen through one identity's Vault-held keys."""

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import boto3
import dagster as dg
from botocore.config import Config
from pydantic import PrivateAttr

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.resources.audit import AuditResource
from mlsec_platform.resources.committed import CommittedTables, committed_tables
from mlsec_platform.resources.running_stack import StackAddressedResource, stack_address
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.settings import Zone, bucket_name, get_settings

#: What the Delta client (delta-rs / object_store) would otherwise take from the process
#: environment. It reads every variable whose lower-cased name is one of its S3 keys, with or
#: without the ``aws_`` prefix: a shell's ``TOKEN`` (the README's own broker token) became the
#: S3 session token, and SeaweedFS answered InvalidAccessKeyId; ``SKIP_SIGNATURE`` or
#: ``VIRTUAL_HOSTED_STYLE_REQUEST`` would change how every lake request is sent. So each key
#: that can be stated is stated, to what the lake needs; an explicit option beats the
#: environment.
PINNED_LAKE_OPTIONS = {
    "AWS_SESSION_TOKEN": "",  # static Vault-held keys: no session
    "AWS_SKIP_SIGNATURE": "false",
    "AWS_UNSIGNED_PAYLOAD": "false",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
    "AWS_S3_ADDRESSING_STYLE": "path",
    "AWS_ALLOW_INVALID_CERTIFICATES": "false",
    "AWS_IMDSV1_FALLBACK": "false",
    "AWS_S3_EXPRESS": "false",
    "AWS_REQUEST_PAYER": "false",
    # Delta commits are conditional PUTs (If-None-Match): never a blind overwrite.
    "AWS_CONDITIONAL_PUT": "etag",
}

#: Keys the Delta client reads from the environment that no option can switch off (an empty
#: proxy is refused as a URL): when one is set, the lake refuses to start rather than send its
#: signed requests through whatever it names.
UNPINNABLE_LAKE_KEYS = ("proxy_url", "proxy_ca_certificate", "proxy_excludes")


class AmbientLakeSetting(ConfigurationError):
    """The process environment holds a variable the Delta client would apply to the lake."""


def refuse_ambient_lake_settings(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`AmbientLakeSetting` naming each variable that would reroute the lake."""
    environ = os.environ if environ is None else environ
    found = sorted(
        name for name in environ if name.lower().removeprefix("aws_") in UNPINNABLE_LAKE_KEYS
    )
    if found:
        raise AmbientLakeSetting(
            f"the environment sets {', '.join(found)}, which the Delta client would apply to "
            "every lake request; unset it for mlsec (the lake is reached directly, with keys "
            "from OpenBao only)"
        )


@dataclass(frozen=True, repr=False)
class S3Credentials:
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"S3Credentials(access_key_id={self.access_key_id!r})"


def lake_storage_options(endpoint_url: str, region: str, creds: S3Credentials) -> dict[str, str]:
    """Options for delta-rs / object_store with ``creds``: every environment-settable key
    pinned (:data:`PINNED_LAKE_OPTIONS`), commits by conditional PUT, the server verified
    against the S3 CA bundle (``certificate_path``: delta-rs adds it to the roots it trusts;
    with another CA the request fails with ``UnknownIssuer``)."""
    refuse_ambient_lake_settings()
    return {
        "certificate_path": str(get_settings().server_ca("s3")),
        **PINNED_LAKE_OPTIONS,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_ALLOW_HTTP": "true" if endpoint_url.startswith("http://") else "false",
    }


class S3LakeResource(StackAddressedResource):
    """Object storage of the lakehouse. Keys come from OpenBao KV at run time, are held in a
    private attribute and re-read after ``refresh_seconds`` so rotations are picked up."""

    vault: dg.ResourceDependency[VaultResource]
    audit: dg.ResourceDependency[AuditResource]
    endpoint_url: str | None = stack_address("S3 endpoint")
    region: str = "us-east-1"
    bucket_prefix: str = "mlsec-"
    refresh_seconds: float = 300.0
    #: Bound of the tables this run committed and keeps for its own later reads (0: none).
    committed_cache_bytes: int = 4 << 30

    _creds: S3Credentials | None = PrivateAttr(default=None)
    _fetched_at: float = PrivateAttr(default=0.0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    stack_addresses = {"endpoint_url": "s3_endpoint"}

    @property
    def identity(self) -> str:
        return self.vault.identity

    def credentials(self) -> S3Credentials:
        with self._lock:
            stale = time.monotonic() - self._fetched_at > self.refresh_seconds
            if self._creds is None or stale:
                path = f"s3/{self.identity}"
                data = self.vault.read_kv(path)
                self._creds = S3Credentials(data["access_key_id"], data["secret_access_key"])
                self._fetched_at = time.monotonic()
                self.audit.secret_read(f"mlsec/{path}", purpose="s3-lake")
            return self._creds

    @property
    def committed(self) -> CommittedTables:
        """Tables this run committed through this identity (see ``resources/committed.py``)."""
        owner = f"{self.identity}@{self.address('endpoint_url')}"
        return committed_tables(owner, self.committed_cache_bytes)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.committed.clear()

    def bucket(self, zone: Zone | str) -> str:
        return bucket_name(self.bucket_prefix, zone)

    def table_uri(self, zone: Zone | str, name: str) -> str:
        return f"s3://{self.bucket(zone)}/{name}"

    def storage_options(self) -> dict[str, str]:
        """Options for delta-rs / object_store; commits use conditional PUT, no lock service."""
        return lake_storage_options(self.address("endpoint_url"), self.region, self.credentials())

    def client(self):
        """A boto3 S3 client with this identity's keys."""
        endpoint_url = self.address("endpoint_url")
        creds = self.credentials()
        return boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=self.region,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
            verify=str(get_settings().server_ca("s3")),
        )
