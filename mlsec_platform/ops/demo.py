"""The main job on the embedded default: servers, bootstrap, ingestion into Raw, verification."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlsec_platform.audit.chain import VerifyReport
from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform.ops.certs import ephemeral_client
from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.pipeline import curate, ingest_pending
from mlsec_platform.ops.servers import bring_up
from mlsec_platform.settings import PlatformSettings

Echo = Callable[[str], None]


@dataclass
class DemoResult:
    run_id: str
    success: bool
    materializations: dict[str, dict] = field(default_factory=dict)
    audit: VerifyReport | None = None
    reads: dict[str, object] = field(default_factory=dict)


def demo_client(settings: PlatformSettings, subject: str):
    """The demo's own client certificate for ``subject`` (an hour, files removed after the
    block): the broker and the gateway serve nobody without one."""
    return ephemeral_client(settings, subject, ttl_seconds=3600)


def ingest_sample(settings: PlatformSettings, orders: int, seed: int, echo: Echo) -> dict:
    """Generate the Olist-shaped data set and send it through the real HTTPS gateway."""
    from mlsec_platform.gateway.client import GatewayClient
    from mlsec_platform.gateway.server import BackgroundGateway
    from mlsec_platform.gateway.services import AUDIENCE
    from mlsec_platform.identities.tokens import issue_token
    from mlsec_platform.sample_data.olist import generate, write_csv
    from mlsec_platform.stack.ports import PortAllocator

    started = time.monotonic()
    dataset = generate(seed=seed, orders=orders)
    files = write_csv(dataset, settings.root / "demo" / f"olist-seed{seed}-{orders}")
    echo(f"  generated {orders:,} orders (seed {seed}) in {time.monotonic() - started:.1f}s")

    with demo_client(settings, "demo-uploader") as (tls, certificate):
        with operator_command(settings, "issue") as session:
            token = issue_token(
                session.vault,
                subject="demo-uploader",
                audience=AUDIENCE,
                ttl_seconds=3600,
                certificate=certificate,
                claims={"scope": ["upload:*", "publish:*"]},
            )
            session.audit.emit("token.issued", {"subject": "demo-uploader", "audience": AUDIENCE})
        with BackgroundGateway(settings, PortAllocator().take()) as gateway:
            return _send(GatewayClient(gateway.url, token, tls=tls), files, dataset, echo)


def _send(client, files: dict, dataset, echo: Echo) -> dict:
    """Upload ``files`` and publish ``dataset``'s order events through ``client``."""
    from mlsec_platform.sample_data.events import order_status_events

    sent = {"files": 0, "rows": 0, "events": 0}
    with client:
        echo(f"  gateway on {client.url}")
        t0 = time.monotonic()
        for source, path in files.items():
            answer = client.upload_file(source, path.read_bytes())
            sent["files"] += 1
            sent["rows"] += answer["rows"]
        took = time.monotonic() - t0
        echo(f"  uploaded {sent['files']} files, {sent['rows']:,} rows in {took:.1f}s")
        t1 = time.monotonic()
        for answer in client.publish_events("order_status", order_status_events(dataset)):
            sent["events"] += answer["accepted"] + answer["duplicates"]
        echo(f"  published {sent['events']:,} order events in {time.monotonic() - t1:.1f}s")
    return sent


def run_demo(
    settings: PlatformSettings, echo: Echo, orders: int = 20_000, seed: int = 42
) -> DemoResult:
    bring_up(settings, echo)
    echo("Ingesting through the gateway (files and events)")
    ingest_sample(settings, orders, seed, echo)

    outcome = DemoResult(run_id="", success=True)
    started = time.monotonic()
    echo("Official connectors: landing and event batches -> Raw")
    raw_runs = ingest_pending(settings, echo)
    for run in raw_runs:
        outcome.materializations[f"{run.asset} [{run.partition}]"] = run.metadata

    echo("Curating: Raw -> Silver -> Gold -> warehouse and feature groups (gated)")
    curated = curate(settings, echo, trigger="demo")
    outcome.run_id, outcome.success = curated.run_id, curated.success
    outcome.materializations |= curated.materializations
    state = "succeeded" if curated.success else "FAILED"
    echo(f"  {len(raw_runs) + 1} runs {state} in {time.monotonic() - started:.1f}s")
    if not curated.success:
        return outcome

    echo("Serving the Access Broker; sample reads at two clearances")
    outcome.reads = sample_reads(settings, echo)

    echo("Verifying the audit chain")
    outcome.audit = verify_audit_log(settings)
    report = outcome.audit
    echo(
        f"  {report.events} events, head #{report.head_seq} "
        + ("intact" if report.ok else f"BROKEN at #{report.broken.seq}: {report.broken.reason}")
    )
    return outcome


#: The demo's two readers: the same question, asked at two clearances.
DEMO_READERS = {
    "analyst (internal)": dict(
        subject="demo-analyst",
        groups=["analysts"],
        project="olist-sp",
        purpose="analytics",
        clearance="internal",
    ),
    "support (confidential)": dict(
        subject="demo-support",
        groups=["support"],
        project="olist-br",
        purpose="customer_support",
        clearance="confidential",
    ),
}
DEMO_QUERY = dict(
    dataset="gold/dim_customer",
    columns=["customer_token", "customer_state", "customer_city", "first_purchase_at", "orders"],
    filters=[("orders", "gte", 2)],
    order_by=["-orders"],
    limit=5,
    max_pages=1,
)


def sample_reads(settings: PlatformSettings, echo: Echo) -> dict[str, object]:
    """Start the broker on a loopback port and read through the SDK as two different people."""
    import pandas as pd

    from broker_api.client import BrokerClient
    from broker_api.identity import issue_broker_token
    from broker_api.server import BackgroundBroker
    from mlsec_platform.stack.ports import PortAllocator

    frames: dict[str, object] = {}
    with BackgroundBroker(settings, PortAllocator().take()) as broker:
        echo(f"  broker on {broker.url} (OpenAPI at {broker.url}/docs)")
        for label, who in DEMO_READERS.items():
            # Each reader with a certificate of their own, and a token bound to it.
            with demo_client(settings, who["subject"]) as (tls, certificate):
                with operator_command(settings, "issue") as session:
                    token = issue_broker_token(
                        session.vault, ttl_seconds=600, certificate=certificate, **who
                    )
                    session.audit.emit(
                        "token.issued", {"subject": who["subject"], "audience": "mlsec-broker"}
                    )
                with BrokerClient(broker.url, token, tls=tls) as client:
                    frame = client.query(**DEMO_QUERY)
            frames[label] = frame
            lineage = frame.attrs["lineage"]
            masks = frame.attrs.get("masks") or {}
            echo(
                f"  {label}, project {who['project']}: {len(frame)} rows of "
                f"{lineage['asset_key']} v{lineage['delta_version']} "
                f"(run {str(lineage['run_id'])[:8]}), masked: "
                f"{', '.join(f'{c}={m}' for c, m in masks.items()) or 'none'}"
            )
            with pd.option_context(
                "display.width", 160, "display.max_columns", 10, "display.max_colwidth", 40
            ):
                for line in frame.to_string(index=False).splitlines():
                    echo(f"    {line}")
    return frames


def next_steps(settings: PlatformSettings) -> list[str]:
    """What to try once the demo has run: each line a command to copy (README: After the demo)."""
    state = (
        [f"  export MLSEC_STATE_DIR={settings.root}    # this demo's state folder"]
        if settings.state_dir != PlatformSettings.model_fields["state_dir"].default
        else []
    )
    return [
        'Next steps (the README\'s "After the demo" walks through them):',
        *state,
        "  mlsec ui           # the Dagster UI on http://127.0.0.1:3000",
        f"  mlsec broker &     # the Access Broker on https://127.0.0.1:{settings.broker_port}"
        " (OpenAPI at /docs)",
        f"  mlsec gateway &    # the ingestion gateway on https://127.0.0.1:{settings.gateway_port}",
        '  eval "$(mlsec cert issue --subject ana --out certs --shell)"   # mTLS: a client cert',
        "  TOKEN=$(mlsec token issue --audience mlsec-broker --subject ana --group analysts \\",
        "      --project olist-sp --purpose analytics --clearance internal)   # bound to it",
        "  mlsec down         # stop the servers; the data stays for the next `mlsec up`",
    ]
