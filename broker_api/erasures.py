"""Erasure cuts: the versions of a curated table that an erasure took away.

`mlsec erase` removes a data subject from a table, deletes every older version's files and log
and records the table's cut (``storage/erasure/delta.py``). The broker keeps recently read
versions in memory and resolves pins and cursors to older versions, so it checks every served
version against the cut: one older is answered 410 Gone (audited like every refusal), never
from memory. The cut of each dataset is at most ``ttl_seconds`` old (the same freshness as
lineage), one small object per dataset re-read from the lake ahead of that.
"""

from __future__ import annotations

import threading

from botocore.exceptions import BotoCoreError, ClientError

from broker_api.refresh_ahead import RefreshAhead
from broker_api.snapshots import SnapshotUnavailable
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.storage.erasure.delta import read_cut


class VersionErased(SnapshotUnavailable):
    """The version asked for (a pin, or a cursor's) is older than an erasure: gone for good."""

    http_status = 410


class ErasureCutUnknown(SnapshotUnavailable):
    """The lake did not say whether the dataset was cut: nothing is served (fail closed)."""

    http_status = 503


class ErasureCuts:
    """The erasure cut of each curated dataset (0: never erased), at most ``ttl_seconds`` old
    (re-read ahead of that, :mod:`broker_api.refresh_ahead`)."""

    def __init__(self, lake: S3LakeResource, *, ttl_seconds: float = 1.0) -> None:
        self._lake = lake
        self._cuts: RefreshAhead[str, int] = RefreshAhead(ttl_seconds, "erasure-cuts")
        self._lock = threading.Lock()
        #: One S3 client, made again when the lake's keys change (a rotation).
        self._client: tuple[str, object] | None = None

    def _s3(self):
        key_id = self._lake.credentials().access_key_id
        with self._lock:
            if self._client is None or self._client[0] != key_id:
                self._client = (key_id, self._lake.client())
            return self._client[1]

    def cut(self, spec: DatasetSpec) -> int:
        return self._cuts.get(spec.id, lambda: self._read(spec))

    def _read(self, spec: DatasetSpec) -> int:
        try:
            return read_cut(self._lake, spec.zone, spec.name, self._s3())
        except (ClientError, BotoCoreError) as exc:
            raise ErasureCutUnknown(
                f"{spec.id}: cannot tell whether an erasure cut it ({type(exc).__name__})"
            ) from None

    def check(self, spec: DatasetSpec, version: int) -> int:
        """``version`` if it is at or after the dataset's cut; VersionErased if older."""
        cut = self.cut(spec)
        if version < cut:
            raise VersionErased(
                f"{spec.id} version {version} is older than an erasure: versions before "
                f"{cut} no longer exist"
            )
        return version
