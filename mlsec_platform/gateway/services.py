"""What the gateway needs, all obtained as the `gateway` identity from OpenBao at start."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from mlsec_platform.identities.tokens import TokenVerifier, transit_public_keys
from mlsec_platform.resources.identity import IdentityResources, identity_resources
from mlsec_platform.settings import PlatformSettings, Zone
from mlsec_platform.storage import quarantine
from mlsec_platform.storage.streamed import put_streamed

log = logging.getLogger(__name__)

#: What a reason record adds to quarantine, about (charged to the growth cap with its payload).
_RECORD_BYTES = 1024

#: The workload identity the gateway acts as.
IDENTITY = "gateway"
AUDIENCE = "mlsec-gateway"


@dataclass(frozen=True)
class Intake:
    """What arrived, recorded whether it is accepted or rejected (never the content itself).

    ``sha256`` and ``size`` are of what was read: a body refused before it was read whole
    (no valid token, over the cap, stalled) is read no further than what is kept of it."""

    kind: str  # "file" or "events"
    name: str  # source or domain
    received_at: str
    sha256: str
    size: int  # bytes read: all of the body, or its first bytes when ``truncated``
    truncated: bool
    declared_size: int | None  # its Content-Length, when it declared one
    content_type: str | None
    client: str | None


def batch_id() -> str:
    """Sortable by arrival time, unique: ``20261122T171530Z-3f2a9c1b7d4e``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


class GatewayServices:
    def __init__(self, settings: PlatformSettings, resources: IdentityResources) -> None:
        self.settings = settings
        self.vault = resources.vault
        self.audit = resources.audit
        self.lake = resources.lake
        self.verifier = TokenVerifier(
            lambda: transit_public_keys(self.vault.client()),
            audience=AUDIENCE,
            max_lifetime_seconds=settings.token_max_lifetime,
        )
        self.nats_url = settings.endpoints().nats_url
        self.quarantine_growth = quarantine.GrowthCap(
            lambda: self.settings.gateway_quarantine_max_bytes_per_hour
        )

    @classmethod
    def from_settings(cls, settings: PlatformSettings) -> GatewayServices:
        return cls(settings, identity_resources(settings, IDENTITY, settings.endpoints()))

    def nats_credentials(self) -> dict:
        return self.vault.read_kv("nats/gateway")

    def put_landing(self, source: str, batch: str, body: BinaryIO, metadata: dict[str, str]) -> str:
        """Put an accepted file in landing from its spool, in parts: it appears in
        ``incoming/`` whole, with its metadata, or not at all."""
        key = f"incoming/{source}/{batch}.csv"
        body.seek(0)
        put_streamed(
            self.lake.client(),
            self.lake.bucket(Zone.LANDING),
            key,
            body,
            content_type="text/csv; charset=utf-8",
            metadata=metadata,
        )
        return key

    def quarantine(
        self,
        intake: Intake,
        body: bytes | BinaryIO,
        status: int,
        reason: str,
        subject: str | None,
    ) -> tuple[str, bool]:
        """Keep rejected input with its reason; returns the quarantine id and whether it was
        kept (nothing is, once quarantine is over its growth cap for the hour)."""
        qid = batch_id()
        record = {
            "quarantine_id": qid,
            "status": status,
            "reason": reason,
            "subject": subject,
            **intake.__dict__,
        }
        granted, first_refusal = self.quarantine_growth.take(_size_of(body) + _RECORD_BYTES)
        if not granted:
            if first_refusal:
                self._alert_growth_capped()
            return qid, False
        quarantine.keep(
            self.lake,
            stage="gateway",
            kind=intake.kind,
            name=intake.name,
            entry_id=qid,
            payload=body,
            record=record,
        )
        return qid, True

    def _alert_growth_capped(self) -> None:
        limit = self.settings.gateway_quarantine_max_bytes_per_hour
        log.error(
            "quarantine growth cap reached: %d bytes kept this hour; refused input is answered "
            "and audited but not kept until the next hour (MLSEC_GATEWAY_QUARANTINE_MAX_BYTES_"
            "PER_HOUR)",
            limit,
        )
        self.audit.emit("quarantine.growth_capped", {"limit_bytes_per_hour": limit})

    def close(self) -> None:
        self.audit.close()
        self.vault.revoke()


def _size_of(body: bytes | BinaryIO) -> int:
    return len(body) if isinstance(body, bytes) else os.fstat(body.fileno()).st_size
