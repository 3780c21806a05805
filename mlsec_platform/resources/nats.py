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
        path = f"nats/{self.vault.identity}"
        credentials = self.vault.read_kv(path)
        self.audit.secret_read(f"mlsec/{path}", purpose="nats")
        return credentials
