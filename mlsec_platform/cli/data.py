"""Moving and removing data: ingest, curate, the demo, quarantine and erasure."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from mlsec_platform.cli.base import _Group, _lazy, echo, main, quarantine
from mlsec_platform.settings import get_settings


@main.command()
def ingest() -> None:
    """Commit every upload and event batch waiting now to Raw, as the connectors' sensors do."""
    _lazy("ops.pipeline").ingest_pending(get_settings(), echo)


@main.command()
@click.option("--full", is_flag=True, help="Rebuild every table from all of Raw (no merge).")
def curate(full: bool) -> None:
    """Run the `curated` job: Raw -> Silver -> Gold -> warehouse and features, gated, incremental.

    Only what Raw gained since the last run is merged; `--full` rebuilds every table."""
    sys.exit(0 if _lazy("ops.pipeline").curate(get_settings(), echo, full=full).success else 1)


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
