"""Dagster's step logs (compute logs) in the lake's ``dagster`` bucket, through dagster-aws's
``S3ComputeLogManager``, under the ``orchestrator`` identity.

Every process that opens the instance writes or reads them: run workers in each code
location's process or container, the webserver that shows them. On one machine a local folder
served all of them; in the compose stack each code server has a file system of its own, so
only a shared store lets the UI show a step's output. The S3 keys are the orchestrator's,
read from OpenBao when the instance opens and again when S3 refuses them (rotated by `mlsec
rotate s3-keys`); its S3 policy reaches that bucket and nothing else, so a step log can never
be written into, or read from, a data zone.

Steps print no secret (the platform never does), so these logs hold none either; what they
hold is progress and errors, which is why the bucket is not a data zone.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from dagster._serdes import ConfigurableClassData
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.settings import PlatformSettings, Zone

#: Key prefix of the step logs in the bucket.
PREFIX = "compute_logs"
#: Answers that mean the keys in hand are no longer the identity's (rotated): read them again.
STALE_KEY_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch"})
IDENTITY = "orchestrator"


def orchestrator_s3_client(settings: PlatformSettings) -> Any:
    """A boto3 S3 client with the orchestrator's keys, read from OpenBao now."""
    vault = VaultResource.for_identity(settings, IDENTITY)
    try:
        keys = vault.read_kv(f"s3/{IDENTITY}")
    finally:
        vault.revoke()
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoints().s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=keys["access_key_id"],
        aws_secret_access_key=keys["secret_access_key"],
        verify=str(settings.server_ca("s3")),  # S3 speaks TLS with the platform's CA
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


class _RenewingClient:
    """A boto3 S3 client that reads the keys again once when S3 says they are stale."""

    def __init__(self, settings: PlatformSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client = orchestrator_s3_client(settings)

    def _renew(self, stale: Any) -> Any:
        with self._lock:
            if self._client is stale:
                self._client = orchestrator_s3_client(self._settings)
            return self._client

    def __getattr__(self, name: str) -> Any:
        client = self._client
        attribute = getattr(client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in STALE_KEY_CODES:
                    raise
            return getattr(self._renew(client), name)(*args, **kwargs)

        return call


class LakeComputeLogManager(S3ComputeLogManager):
    """``S3ComputeLogManager`` on the ``dagster`` bucket with the orchestrator's keys; steps
    write to ``local_dir`` first and the files are uploaded as they grow and when they end."""

    def __init__(
        self, settings: PlatformSettings, inst_data: ConfigurableClassData | None = None
    ) -> None:
        local = settings.dagster_home / "compute_logs"
        local.mkdir(parents=True, exist_ok=True)
        self._renewing = _RenewingClient(settings)
        super().__init__(
            bucket=settings.bucket(Zone.DAGSTER),
            local_dir=str(local),
            inst_data=inst_data,
            prefix=PREFIX,
            endpoint_url=settings.endpoints().s3_endpoint,
            verify_cert_path=str(settings.server_ca("s3")),
            skip_empty_files=True,
            region=settings.s3_region,
        )

    # The base class makes a client from boto3's ambient credentials, which the platform never
    # uses (an identity's keys come from OpenBao only): every call goes to the renewing one.
    @property
    def _s3_session(self) -> Any:
        return self._renewing

    @_s3_session.setter
    def _s3_session(self, ambient: Any) -> None:
        pass
