"""The main job on the embedded default: servers, bootstrap, ingestion into Raw, verification."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from mlsec_platform.audit.chain import VerifyReport
from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform.settings import PlatformSettings, Profile
from mlsec_platform.stack.bootstrap import bootstrap
from mlsec_platform.stack.orchestrator import apply_environment, orchestrator_environment
from mlsec_platform.stack.supervisor import Supervisor

Echo = Callable[[str], None]

#: Keep Dagster's own console output to warnings: the demo prints its own progress.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class DemoResult:
    run_id: str
    success: bool
    materializations: dict[str, dict] = field(default_factory=dict)
    audit: VerifyReport | None = None
    reads: dict[str, object] = field(default_factory=dict)


def bring_up(settings: PlatformSettings, echo: Echo) -> None:
    """Start (local) or check (stack) the servers, then bootstrap identities idempotently."""
    if settings.profile is Profile.LOCAL:
        echo("Starting the embedded stack")
        endpoints = Supervisor(settings, progress=echo).up()
    else:
        endpoints = settings.endpoints()
    echo("Bootstrapping identities and permissions")
    bootstrap(settings, endpoints, progress=echo)


def ingest_sample(settings: PlatformSettings, orders: int, seed: int, echo: Echo) -> dict:
    """Generate the Olist-shaped data set and send it through the real HTTP gateway."""
    from mlsec_platform.gateway.client import GatewayClient
    from mlsec_platform.gateway.server import BackgroundGateway
    from mlsec_platform.gateway.services import AUDIENCE
    from mlsec_platform.identities.tokens import issue_token
    from mlsec_platform.sample_data.events import order_status_events
    from mlsec_platform.sample_data.olist import generate, write_csv
    from mlsec_platform.stack.bootstrap import BootstrapCredentials
    from mlsec_platform.stack.ports import PortAllocator

    started = time.monotonic()
    dataset = generate(seed=seed, orders=orders)
    files = write_csv(dataset, settings.root / "demo" / f"olist-seed{seed}-{orders}")
    echo(f"  generated {orders:,} orders (seed {seed}) in {time.monotonic() - started:.1f}s")

    vault = BootstrapCredentials.load(settings).vault(settings.endpoints())
    token = issue_token(vault, subject="demo-uploader", audience=AUDIENCE, ttl_seconds=3600,
                        claims={"scope": ["upload:*", "publish:*"]})  # fmt: skip
    sent = {"files": 0, "rows": 0, "events": 0}
    with BackgroundGateway(settings, PortAllocator().take()) as gateway, \
            GatewayClient(gateway.url, token) as client:  # fmt: skip
        echo(f"  gateway on {gateway.url}")
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
    from mlsec_platform.defs.resources import build_resources
    from mlsec_platform.ops.drain import drain_events, drain_landing

    bring_up(settings, echo)
    apply_environment(orchestrator_environment(settings))
    from mlsec_platform.definitions import defs  # after the environment names the stack

    definitions = defs()
    echo("Ingesting through the gateway (files and events)")
    ingest_sample(settings, orders, seed, echo)

    outcome = DemoResult(run_id="", success=True)
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        resources = build_resources(settings)
        echo("Official connectors: landing and event batches -> Raw")
        raw_runs = drain_landing(instance, resources, echo) + drain_events(
            instance, resources, echo
        )
        for run in raw_runs:
            outcome.materializations[f"{run.asset} [{run.partition}]"] = run.metadata

        echo("Curating: Raw -> Silver -> Gold -> warehouse and feature groups (gated)")
        result = definitions.resolve_job_def("curated").execute_in_process(
            instance=instance, run_config=QUIET_RUN_CONFIG, tags={"mlsec/trigger": "demo"},
            raise_on_error=False,
        )  # fmt: skip
    outcome.run_id, outcome.success = result.run_id, result.success
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        outcome.materializations[mat.asset_key.to_user_string()] = meta
        where = meta.get("table_uri") or meta.get("table", "")
        echo(
            f"  {mat.asset_key.to_user_string():<34} delta v{meta.get('delta_version')}  "
            f"{meta.get('dagster/row_count')} rows  {where}"
        )
    for check in result.get_asset_check_evaluations():
        if not check.passed:
            echo(f"  gate FAILED: {check.asset_key.to_user_string()} {check.check_name}")
    state = "succeeded" if result.success else "FAILED"
    echo(f"  {len(raw_runs) + 1} runs {state} in {time.monotonic() - started:.1f}s")
    if not result.success:
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
    from mlsec_platform.stack.bootstrap import BootstrapCredentials
    from mlsec_platform.stack.ports import PortAllocator

    vault = BootstrapCredentials.load(settings).vault(settings.endpoints())
    frames: dict[str, object] = {}
    with BackgroundBroker(settings, PortAllocator().take()) as broker:
        echo(f"  broker on {broker.url} (OpenAPI at {broker.url}/docs)")
        for label, who in DEMO_READERS.items():
            token = issue_broker_token(vault, ttl_seconds=600, **who)
            with BrokerClient(broker.url, token) as client:
                frame = client.query(**DEMO_QUERY)
            frames[label] = frame
            lineage = frame.attrs["lineage"]
            masks = frame.attrs.get("masks") or {}
            echo(f"  {label}, project {who['project']}: {len(frame)} rows of "
                 f"{lineage['asset_key']} v{lineage['delta_version']} "
                 f"(run {str(lineage['run_id'])[:8]}), masked: "
                 f"{', '.join(f'{c}={m}' for c, m in masks.items()) or 'none'}")  # fmt: skip
            with pd.option_context("display.width", 160, "display.max_columns", 10,
                                   "display.max_colwidth", 40):  # fmt: skip
                for line in frame.to_string(index=False).splitlines():
                    echo(f"    {line}")
    return frames
