"""The workload identities of the platform and what each may touch.

Every writer gets its own storage identity: an OpenBao AppRole (whose token policy is
``policies/vault/<name>.hcl``), S3 keys bound to ``policies/s3/<name>.json``, and the Postgres
group roles its dynamic users join. The storage itself enforces these; nothing relies on
callers behaving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from string import Template

from mlsec_platform.settings import Zone

#: OpenBao KV path of the Access Broker's own keys (masking, cursor signing); bootstrap writes
#: them once and only the `broker` identity may read them.
BROKER_KEYS = "broker/keys"
#: The field of BROKER_KEYS whose key signs the row scopes the warehouse verifies.
ROW_SCOPE_SIGNING_KEY = "row_scope_signing_key"
#: Every field of BROKER_KEYS: each a random 32-byte key, base64.
BROKER_KEY_NAMES = ("masking_hash_key", "cursor_signing_key", ROW_SCOPE_SIGNING_KEY)
#: The OpenBao transit key (ed25519, never exported) that certifies each broker process's
#: in-memory lineage-receipt key (``broker_api.receipts``).
BROKER_RECEIPT_KEY = "broker-receipts"

#: The mount of OpenBao's PKI engine: the platform CA.
PKI_MOUNT = "pki"
#: The PKI role each TLS service issues its server certificate from (its policy names only its
#: own), and the role of client certificates (``mlsec cert issue``).
SERVER_CERT_ROLES = {"broker": "broker-server", "gateway": "gateway-server"}
#: The roles of the embedded servers' certificates: no workload's policy names them; the
#: supervisor issues from them with the bootstrap's rights (stack/supervisor.py).
STACK_SERVER_CERT_ROLES = {
    "seaweedfs": "s3-server",
    "postgres": "postgres-server",
    "nats": "nats-server",
}
CLIENT_CERT_ROLE = "client"


@dataclass(frozen=True)
class Identity:
    name: str
    purpose: str
    #: Vault database roles this identity may request credentials from.
    database_roles: tuple[str, ...] = ()
    #: None: a workload, logging in with its own AppRole. Else the operator command whose
    #: token alone reads this identity's S3 keys (an identity with no AppRole, no workload).
    keys_read_by: str | None = None

    def vault_policy(self) -> str:
        return _read("vault", f"{self.name}.hcl")

    def s3_policy(self, bucket_prefix: str) -> dict:
        """The AWS policy document, with bucket names filled in (same file serves any S3)."""
        text = Template(_read("s3", f"{self.name}.json")).substitute(prefix=bucket_prefix)
        return json.loads(text)


def _read(kind: str, filename: str) -> str:
    return (
        resources.files("mlsec_platform.identities")
        .joinpath("policies", kind, filename)
        .read_text()
    )


GATEWAY = Identity(
    "gateway",
    "the ingestion gateway: put accepted uploads in landing, rejects in quarantine, publish events",
    database_roles=("audit-writer",),
)
CONNECTOR = Identity(
    "connector",
    "official connectors: read landing, append to raw, keep rejects in quarantine",
    database_roles=("audit-writer",),
)
PIPELINE = Identity(
    "pipeline",
    "asset materializations: read raw, write silver, gold and features",
    database_roles=("warehouse-writer", "audit-writer"),
)
BROKER = Identity(
    "broker",
    "the Access Broker: read curated zones (silver, gold, features) and their lineage, "
    "nothing else",
    database_roles=("warehouse-reader", "lineage-reader", "audit-writer", "limits-keeper"),
)
AUDITOR = Identity(
    "auditor",
    "auditors: read the audit log, list zone contents, anchor the audit chain",
    database_roles=("audit-reader",),
)
LIFECYCLE = Identity(
    "lifecycle",
    "moves raw partitions past retention to cold and back (`mlsec erase` borrows its key to "
    "rewrite raw and cold, the only key that deletes in raw)",
    database_roles=("audit-writer",),
)
REVEALER = Identity(
    "revealer",
    "the Access Broker's reveal path: reads the token vault and unwraps its data keys, for "
    "entitled requests with a reason",
    database_roles=("audit-writer",),
)
ORCHESTRATOR = Identity(
    "orchestrator",
    "the Dagster instance (webserver, daemon, run workers): its own storage only (Postgres, "
    "and its step logs in the dagster bucket)",
)

ERASER = Identity(
    "eraser",
    "the storage rights only `mlsec erase` needs: rewrite landing and quarantine objects and "
    "delete a subject's tokens from the token vault; no AppRole, no workload runs as it",
    keys_read_by="erase",
)

#: The workload identities: each an AppRole with its own OpenBao policy.
IDENTITIES: dict[str, Identity] = {
    i.name: i
    for i in (GATEWAY, CONNECTOR, PIPELINE, BROKER, AUDITOR, LIFECYCLE, REVEALER, ORCHESTRATOR)
}

#: The S3 identities (the orchestrator only its step logs, in a bucket of its own; the eraser
#: an S3 user only, whose keys the operator's `erase` token alone reads).
S3_IDENTITIES = (
    GATEWAY,
    CONNECTOR,
    PIPELINE,
    BROKER,
    AUDITOR,
    LIFECYCLE,
    REVEALER,
    ORCHESTRATOR,
    ERASER,
)

#: Which zones each identity may write (documentation of the JSON files, checked by tests).
WRITES: dict[str, frozenset[Zone]] = {
    "gateway": frozenset({Zone.LANDING, Zone.QUARANTINE}),
    "connector": frozenset({Zone.RAW, Zone.QUARANTINE, Zone.LANDING}),
    # The token vault: appended to by minting (only the pipeline mints).
    "pipeline": frozenset({Zone.SILVER, Zone.GOLD, Zone.FEATURES, Zone.QUARANTINE, Zone.TOKENS}),
    "broker": frozenset(),
    "auditor": frozenset(),
    "lifecycle": frozenset({Zone.RAW, Zone.COLD}),
    "revealer": frozenset(),
    "orchestrator": frozenset({Zone.DAGSTER}),
    "eraser": frozenset({Zone.LANDING, Zone.QUARANTINE, Zone.TOKENS}),
}
#: Which zones each identity may read objects from.
READS: dict[str, frozenset[Zone]] = {
    "gateway": frozenset({Zone.QUARANTINE}),
    "connector": frozenset({Zone.LANDING, Zone.RAW, Zone.QUARANTINE}),
    "pipeline": frozenset(
        {Zone.RAW, Zone.SILVER, Zone.GOLD, Zone.FEATURES, Zone.QUARANTINE, Zone.TOKENS}
    ),
    "broker": frozenset({Zone.SILVER, Zone.GOLD, Zone.FEATURES}),
    "auditor": frozenset(),
    "lifecycle": frozenset({Zone.RAW, Zone.COLD}),
    # Sealed values and wrapped keys: only unwrapping a key (OpenBao) opens them.
    "revealer": frozenset({Zone.TOKENS}),
    "orchestrator": frozenset({Zone.DAGSTER}),
    "eraser": frozenset({Zone.LANDING, Zone.QUARANTINE, Zone.TOKENS}),
}
#: Which zones each identity may delete objects from. Raw is immutable to every writer: only
#: ``lifecycle`` may delete there, the files of batches it has archived to cold, and an
#: erasure's (`mlsec erase` borrows its key). The ``eraser``, whose keys only an erasure
#: reads, rewrites landing and quarantine objects that quote the data subject and deletes
#: the subject's rows from the token vault: no workload deletes there (the pipeline only
#: appends: no workload that mints can remove a token), and none reads a sealed value but
#: the pipeline that seals and the revealer that opens.
DELETES: dict[str, frozenset[Zone]] = {
    "gateway": frozenset(),
    "connector": frozenset({Zone.LANDING}),
    "pipeline": frozenset({Zone.SILVER, Zone.GOLD, Zone.FEATURES}),
    "broker": frozenset(),
    "auditor": frozenset(),
    "lifecycle": frozenset({Zone.RAW, Zone.COLD}),
    "revealer": frozenset(),
    "orchestrator": frozenset({Zone.DAGSTER}),
    "eraser": frozenset({Zone.LANDING, Zone.QUARANTINE, Zone.TOKENS}),
}
