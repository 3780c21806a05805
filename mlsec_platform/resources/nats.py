"""NATS JetStream, reached with credentials read from OpenBao at run time."""

import dagster as dg

from mlsec_platform.resources.audit import AuditResource
from mlsec_platform.resources.running_stack import StackAddressedResource, stack_address
from mlsec_platform.resources.vault import VaultResource


class NatsResource(StackAddressedResource):
    """Where the event stream is and how to log in to it (read from OpenBao when needed)."""

    vault: dg.ResourceDependency[VaultResource]
    audit: dg.ResourceDependency[AuditResource]
    url: str | None = stack_address("NATS URL")

    stack_addresses = {"url": "nats_url"}

    def credentials(self) -> dict:
        self.address("url")  # no secret is read for a server this resource cannot name
        path = f"nats/{self.vault.identity}"
        credentials = self.vault.read_kv(path)
        self.audit.secret_read(f"mlsec/{path}", purpose="nats")
        return credentials
