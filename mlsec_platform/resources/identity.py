"""One identity's chain of resources: its OpenBao login, its audit writer, its view of the lake.

Every process that acts as a workload identity (the code location's writers, the gateway,
the broker) holds the same three, wired the same way: the audit log writes with a login the
identity's Vault token obtains, and the lake's keys come from that Vault and are recorded as
secret reads in that audit log. Building them here keeps that wiring one thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlsec_platform.resources.audit import AuditResource
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.settings import Endpoints, PlatformSettings


@dataclass(frozen=True)
class IdentityResources:
    """The Vault, audit and lake resources of one identity, wired to each other."""

    vault: VaultResource
    audit: AuditResource
    lake: S3LakeResource


def identity_resources(
    settings: PlatformSettings, identity: str, endpoints: Endpoints | None
) -> IdentityResources:
    """The resources of ``identity`` on the servers at ``endpoints``, with the AppRole
    credentials the bootstrap delivered for it. With ``endpoints`` None, each resource takes
    the running stack's addresses when a run sets it up (the code location loads with no
    stack).

    Nothing connects yet: the Vault login, the audit login and the S3 keys are obtained on
    first use."""
    vault = VaultResource(
        addr=endpoints.vault_addr if endpoints else None,
        identity=identity,
        credentials_dir=str(settings.identities_dir),
    )
    audit = AuditResource(
        vault=vault,
        host=endpoints.postgres_host if endpoints else None,
        port=endpoints.postgres_port if endpoints else None,
        dbname=settings.warehouse_db,
    )
    lake = S3LakeResource(
        vault=vault,
        audit=audit,
        endpoint_url=endpoints.s3_endpoint if endpoints else None,
        region=settings.s3_region,
        bucket_prefix=settings.bucket_prefix,
        committed_cache_bytes=settings.committed_cache_bytes,
    )
    return IdentityResources(vault=vault, audit=audit, lake=lake)
