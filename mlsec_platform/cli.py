"""`mlsec`: the platform's command; each command reads its options and calls ops/ or stack/."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from types import ModuleType

import click

from mlsec_platform.errors import AccessDenied, MlsecError
from mlsec_platform.ops.refusals import ActionFailed, NotApplicable, UnknownName
from mlsec_platform.settings import get_settings

echo = click.echo


def _lazy(module: str) -> ModuleType:
    """``mlsec_platform.<module>``, imported when its command runs: `mlsec --help` stays fast."""
    return importlib.import_module(f"mlsec_platform.{module}")


class _Command(click.Command):
    """A command whose refusals read as click's own errors; other platform errors reach run()."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UnknownName as exc:
            raise click.BadParameter(str(exc), ctx=ctx) from None
        except NotApplicable as exc:
            raise click.UsageError(str(exc), ctx=ctx) from None
        except (ActionFailed, AccessDenied) as exc:
            raise click.ClickException(str(exc)) from None


class _Group(click.Group):
    command_class = _Command


rotate = _Group("rotate", help="Rotate credentials.")
token = _Group("token", help="Identity tokens signed by the issuer key held in OpenBao.")
cert = _Group("cert", help="Client certificates from the platform CA (OpenBao PKI).")
quarantine = _Group("quarantine", help="Input that was refused, kept with its reason.")
audit = _Group("audit", help="The hash-chained audit log.")
operator = _Group("operator", help="The operators' OpenBao access.")
receipt = _Group("receipt", help="Broker lineage receipts: signed evidence of one answer.")
subject = _Group("subject", help="Broker subjects held by exfiltration detection.")
main = _Group(
    "main",
    help="mlsec-platform: a secure lakehouse as a Dagster asset graph.",
    commands=[rotate, token, cert, quarantine, audit, operator, receipt, subject],
)


@main.command()
def up() -> None:
    """Start the embedded servers (or check the configured ones) and bootstrap identities."""
    _lazy("ops.servers").start_servers(get_settings(), echo)


@main.command()
def down() -> None:
    """Stop the embedded servers; their state stays under the state folder."""
    _lazy("ops.servers").stop_servers(get_settings(), echo)


@main.command()
def status() -> None:
    """Show each embedded server (ports, health) and service (UI, broker, gateway: URL, pid)."""
    sys.exit(0 if _lazy("ops.servers").report_status(get_settings(), echo) else 1)


@main.command("bootstrap")
def bootstrap_cmd() -> None:
    """Create or repair policies, AppRoles, buckets, S3 users and Postgres roles (idempotent)."""
    settings = get_settings()
    _lazy("stack.bootstrap").bootstrap(settings, settings.endpoints(), progress=echo)


@main.command("server-certs")
@click.option("--listener-only", is_flag=True, help="OpenBao's only (before it starts).")
def server_certs(listener_only: bool) -> None:
    """Issue the servers' TLS certificates when due (`stack`); print the servers that got one."""
    module = _lazy("stack.bootstrap.server_certs")
    for folder in module.ensure_stack_certificates(get_settings(), listener_only=listener_only):
        echo(folder)


@rotate.command("s3-keys")
@click.argument("identities", nargs=-1)
def rotate_s3(identities: tuple[str, ...]) -> None:
    """New S3 keys for IDENTITIES (default: all); the old keys stop working at once."""
    _lazy("ops.s3_keys").rotate_identity_keys(get_settings(), identities, echo)


@rotate.command("token-keys")
@click.option("--resume", is_flag=True, help="Finish a rotation whose rewrap failed.")
def rotate_token_keys(resume: bool) -> None:
    """New token vault key versions; rewrap every stored key; retire the old (tokens stay)."""
    _lazy("ops.rotation").rotate_token_keys(get_settings(), echo, resume=resume)


@main.command("reveal")
@click.argument("tokens", nargs=-1, required=True)
@click.option("--domain", default="customers", show_default=True)
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def reveal_cmd(tokens: tuple[str, ...], domain: str, reason: str) -> None:
    """Turn tokens back into clear values (operator; audited at high severity)."""
    _lazy("ops.reveal").reveal_as_operator(get_settings(), tokens, domain, reason, echo)


class _LazyChoice(click.Choice):
    """The members of a catalog enum, imported only when the option is used or its help shown."""

    def __init__(self, enum: str, attribute: str) -> None:
        self._enum, self._attribute, self.case_sensitive = enum, attribute, True

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        members = getattr(_lazy("catalog.governance"), self._enum)
        return tuple(getattr(member, self._attribute) for member in members)


class _TokenIssue(_Command):
    """`token issue`, whose help ends with what the current broker policy knows."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Broker tokens"):
            for line in _lazy("ops.tokens").policy_vocabulary(get_settings()):
                formatter.write_text(line)


@token.command("issue", cls=_TokenIssue)
@click.option("--subject", required=True, help="Who the token is for (sub).")
@click.option(
    "--cert",
    "certificate",
    envvar="MLSEC_CLIENT_CERT",
    show_envvar=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The client certificate (PEM) the token is bound to: accepted only with it.",
)
@click.option("--audience", default="mlsec-gateway", show_default=True)
@click.option("--scope", "scopes", multiple=True, help="e.g. upload:olist_orders, publish:*")
@click.option("--group", "groups", multiple=True, help="Broker: a group of the subject.")
@click.option("--project", default=None, help="Broker: the project the subject works for.")
@click.option("--purpose", type=_LazyChoice("Purpose", "value"), default=None, help="Broker: why.")
@click.option(
    "--clearance",
    type=_LazyChoice("Sensitivity", "label"),
    default=None,
    help="Broker: data clearance.",
)
@click.option("--entitlement", "entitlements", multiple=True, help="Broker: e.g. reveal.")
@click.option("--ttl", type=int, default=None, help="Seconds (default MLSEC_UPLOAD_TOKEN_TTL).")
def token_issue(**options) -> None:
    """Print a signed token (operator command: logs in as the operator; audited).

    Gateway tokens carry --scope; broker tokens (--audience mlsec-broker) carry --group,
    --project, --purpose, --clearance and optionally --entitlement. Either is bound to the
    client certificate --cert (`mlsec cert issue`).
    """
    tokens = _lazy("ops.tokens")
    echo(tokens.issue_operator_token(get_settings(), tokens.TokenRequest(**options)))


@cert.command("issue")
@click.option("--subject", required=True, help="Who the certificate is for (its CN).")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for SUBJECT.pem, SUBJECT-key.pem (0600) and ca.pem.",
)
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 3600, 30m, 1h (12h max).")
@click.option("--shell", is_flag=True, help="Print `export MLSEC_...=` lines for the SDK.")
def cert_issue(subject: str, out: Path, ttl: str, shell: bool) -> None:
    """Issue a client certificate for the broker and the gateway (operator command; audited)."""
    _lazy("ops.certs").issue_to_folder(get_settings(), subject, out, ttl, shell, echo)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default MLSEC_GATEWAY_PORT (8470).")
def gateway(host: str, port: int | None) -> None:
    """Serve the ingestion gateway (uploads and events) as the `gateway` identity."""
    _lazy("ops.serve").serve_gateway(get_settings(), host, port, echo)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default MLSEC_BROKER_PORT (8480).")
def broker(host: str, port: int | None) -> None:
    """Serve the Access Broker (read-only, policy-checked, audited) as the `broker` identity."""
    _lazy("ops.serve").serve_broker(get_settings(), host, port, echo)


@quarantine.command("list")
def quarantine_list() -> None:
    """Every quarantined upload, event request or batch, with its reason."""
    _lazy("ops.quarantine").list_quarantined(get_settings(), echo)


@quarantine.command("show")
@click.argument("quarantine_id")
@click.option("--rows", default=5, show_default=True, help="Failing rows shown at most (0-100).")
def quarantine_show(quarantine_id: str, rows: int) -> None:
    """One quarantined entry: reason, batch, size; a gate's failing rows, personal data masked."""
    _lazy("ops.quarantine").show_quarantined(get_settings(), quarantine_id, rows, echo)


@quarantine.command("exclude")
@click.argument("source")
@click.argument("batch_id")
@click.option("--reason", required=True, help="Why (kept with the marker and audited).")
def quarantine_exclude(source: str, batch_id: str, reason: str) -> None:
    """Keep a Raw batch that failed a quality gate out of Silver (Raw itself stays as it is)."""
    _lazy("ops.quarantine").exclude_from_curation(get_settings(), source, batch_id, reason, echo)


@quarantine.command("resubmit")
@click.argument("quarantine_id")
@click.option("--gateway-url", default=None, help="Default https://127.0.0.1:MLSEC_GATEWAY_PORT")
def quarantine_resubmit(quarantine_id: str, gateway_url: str | None) -> None:
    """Send a quarantined payload through the running gateway again (all checks re-run)."""
    resubmit = _lazy("ops.quarantine").resubmit_quarantined
    sys.exit(0 if resubmit(get_settings(), quarantine_id, gateway_url, echo) else 1)


@audit.command("verify")
@click.option("--no-anchor", is_flag=True, help="Do not move the OpenBao anchor forward.")
def audit_verify(no_anchor: bool) -> None:
    """Recompute every link as the auditor and anchor the head in OpenBao; report the first
    broken link (exit 1)."""
    report = _lazy("ops.audit_verify").report_audit_log(get_settings(), echo, anchor=not no_anchor)
    sys.exit(0 if report.ok else 1)


@audit.command("search")
@click.option("--subject", default=None, help="Who acted (a token's subject).")
@click.option(
    "--dataset", default=None, help="The dataset read or written, e.g. gold/dim_customer."
)
@click.option("--type", "event_type", default=None, help="Event type, e.g. broker.request.")
@click.option("--outcome", type=click.Choice(["allowed", "denied"]), default=None)
@click.option("--since", default=None, help="ISO 8601 time, or an age: 90s, 30m, 12h, 7d.")
@click.option("--until", default=None, help="ISO 8601 time, or an age: 90s, 30m, 12h, 7d.")
@click.option("--limit", default=50, show_default=True, help="Newest events shown at most.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit_search(
    subject: str | None,
    dataset: str | None,
    event_type: str | None,
    outcome: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Find audit events by subject, dataset, type, outcome and time, newest first."""
    search = _lazy("ops.audit_search")
    where = search.AuditFilter(
        subject=subject,
        dataset=dataset,
        event_type=event_type,
        outcome=outcome,
        since=search.parse_time(since),
        until=search.parse_time(until),
        limit=limit,
    )
    search.report_search(get_settings(), where, echo, as_json=as_json)


@operator.command("revoke-root")
def operator_revoke_root() -> None:
    """Revoke OpenBao's root token; operator commands and bootstrap work on without it."""
    _lazy("ops.operator").revoke_root_token(get_settings(), echo)


@subject.command("resume")
@click.argument("name")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def subject_resume(name: str, reason: str) -> None:
    """Lift the hold detection put on subject NAME, in every broker replica."""
    _lazy("ops.subjects").resume_subject(get_settings(), name, reason, echo)


def _subject(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--subject`` checked against the catalog's kinds before anything logs in."""
    if value is not None:
        try:
            _lazy("privacy.erasure.subject").parse_subject(value)
        except _lazy("privacy.erasure.subject").InvalidSubject as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


class _Erase(_Group):
    """`erase` erases when called with --subject, and holds `erase verify`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, invoke_without_command=True, **kwargs)


@main.group("erase", cls=_Erase)
@click.option("--subject", callback=_subject, help="<kind>=<value>, e.g. customer_cpf=... .")
@click.option("--reason", default=None, help="Why (the request; recorded and in the receipt).")
@click.option(
    "--receipt",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the signed receipt (default: under the state folder).",
)
@click.pass_context
def erase(ctx: click.Context, subject: str | None, reason: str | None, receipt: Path | None):
    """Erase a data subject everywhere (operator; audited); write a signed receipt."""
    if ctx.invoked_subcommand is not None:
        return
    if subject is None or reason is None:
        raise click.UsageError("erasing needs --subject <kind>=<value> and --reason", ctx=ctx)
    _lazy("ops.erase").erase_in_stack(get_settings(), subject, reason, echo, receipt)


@erase.command("verify")
@click.argument("receipt", type=click.Path(dir_okay=False, path_type=Path))
def erase_verify(receipt: Path) -> None:
    """Check an erasure receipt's signature with OpenBao; exit 1 if it was changed."""
    _lazy("ops.erase").verify_receipt_file(get_settings(), receipt, echo)


@receipt.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--body", type=click.Path(dir_okay=False, path_type=Path), help="The body file.")
@click.option("--jwks", type=click.Path(dir_okay=False, path_type=Path), help="A JWKS file.")
def receipt_verify(file: Path, body: Path | None, jwks: Path | None) -> None:
    """Check a broker lineage receipt against its response body; exit 1 if it does not verify.

    FILE: the receipt line, then the body (or the receipt only, with --body); the keys: the
    running stack's receipt JWKS (or --jwks)."""
    _lazy("ops.receipts").verify_lineage_receipt(get_settings(), file, body, jwks, echo)


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
    _lazy("ops.serve").serve_ui(get_settings(), host, port, echo)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9464, show_default=True)
def metrics(host: str, port: int) -> None:
    """Serve the pipeline runs' Prometheus metrics (rows, durations, gates, tokens minted)."""
    _lazy("ops.metrics").serve_metrics(get_settings(), host, port, echo)


@main.command()
@click.argument("name", required=False)
@click.option("-n", "--lines", "count", default=50, show_default=True, help="Lines from the end.")
def logs(name: str | None, count: int) -> None:
    """List every log of the embedded stack, or print the end of one."""
    if name is None:
        _lazy("ops.logs").list_logs(get_settings(), echo)
    else:
        _lazy("ops.logs").show_log(get_settings(), name, count, echo)


@main.command()
def ingest() -> None:
    """Commit every upload and event batch waiting now to Raw, as the connectors' sensors do."""
    _lazy("ops.pipeline").ingest_pending(get_settings(), echo)


@main.command()
def curate() -> None:
    """Run the `curated` job: Raw -> Silver -> Gold -> warehouse and features, gated."""
    sys.exit(0 if _lazy("ops.pipeline").curate(get_settings(), echo).success else 1)


@main.command()
@click.option("--orders", default=20_000, show_default=True, help="Size of the generated data.")
@click.option("--seed", default=42, show_default=True)
def demo(orders: int, seed: int) -> None:
    """The main job on the embedded default: servers, bootstrap, ingestion, asset graph, audit."""
    started = time.monotonic()
    result = _lazy("ops.demo").run_demo(get_settings(), echo, orders=orders, seed=seed)
    ok = result.success and result.audit is not None and result.audit.ok
    echo(f"Demo {'finished' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s")
    for line in _lazy("ops.demo").next_steps(get_settings()) if ok else []:
        echo(line)
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
