"""What the gateway needs, all obtained as the `gateway` identity from OpenBao at start."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from mlsec_platform.identities.tokens import TokenVerifier, transit_public_keys
from mlsec_platform.resources.identity import IdentityResources, identity_resources
from mlsec_platform.settings import PlatformSettings, Zone
from mlsec_platform.storage import quarantine

#: The workload identity the gateway acts as.
IDENTITY = "gateway"
AUDIENCE = "mlsec-gateway"


@dataclass(frozen=True)
class Intake:
    """What arrived, recorded whether it is accepted or rejected (never the content itself)."""

    kind: str  # "file" or "events"
    name: str  # source or domain
    received_at: str
    sha256: str
    size: int
    truncated: bool
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

    @classmethod
    def from_settings(cls, settings: PlatformSettings) -> GatewayServices:
        return cls(settings, identity_resources(settings, IDENTITY, settings.endpoints()))

    def nats_credentials(self) -> dict:
        return self.vault.read_kv("nats/gateway")

    def put_landing(self, source: str, batch: str, body: bytes, metadata: dict[str, str]) -> str:
        key = f"incoming/{source}/{batch}.csv"
        self.lake.client().put_object(
            Bucket=self.lake.bucket(Zone.LANDING),
            Key=key,
            Body=body,
            ContentType="text/csv; charset=utf-8",
            Metadata=metadata,
        )
        return key

    def quarantine(
        self, intake: Intake, body: bytes, status: int, reason: str, subject: str | None
    ) -> str:
        """Keep rejected input with its reason; returns the quarantine id."""
        qid = batch_id()
        record = {
            "quarantine_id": qid,
            "status": status,
            "reason": reason,
            "subject": subject,
            **intake.__dict__,
        }
        quarantine.keep(
            self.lake,
            stage="gateway",
            kind=intake.kind,
            name=intake.name,
            entry_id=qid,
            payload=body,
            record=record,
        )
        return qid

    def close(self) -> None:
        self.audit.close()
        self.vault.revoke()
