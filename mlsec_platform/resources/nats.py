"""NATS JetStream, reached with credentials read from OpenBao at run time."""

import dagster as dg

from mlsec_platform.resources.audit import AuditResource
from mlsec_platform.resources.vault import VaultResource


class NatsResource(dg.ConfigurableResource):
    """Where the event stream is and how to log in to it (read from OpenBao when needed)."""

    vault: dg.ResourceDependency[VaultResource]
    audit: dg.ResourceDependency[AuditResource]
    url: str

    def credentials(self) -> dict:
        credentials = self.vault.read_kv("nats/platform")
        self.audit.secret_read("mlsec/nats/platform", purpose="nats")
        return credentials
