"""What every `mlsec` command shares: lazy imports, refusals as click errors, the groups."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import click

from mlsec_platform.errors import AccessDenied, MlsecError
from mlsec_platform.ops.refusals import ActionFailed, NotApplicable, UnknownName

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


class _LazyChoice(click.Choice):
    """The members of a catalog enum, imported only when the option is used or its help shown."""

    def __init__(self, enum: str, attribute: str) -> None:
        self._enum, self._attribute, self.case_sensitive = enum, attribute, True

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        members = getattr(_lazy("catalog.governance"), self._enum)
        return tuple(getattr(member, self._attribute) for member in members)


def run() -> None:
    """Entry point: the platform's errors end in one clear line, not a traceback."""
    try:
        main(standalone_mode=True)
    except MlsecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
