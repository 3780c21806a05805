"""Rotating the tokenization key and re-tokenizing everything downstream through the graph.

1. Vault rotates the transit key: new tokens are ``vault:v<n+1>:...``.
2. The ``curated`` job re-materializes Silver from Raw with the new version, and Gold, the
   warehouse and the feature groups from that Silver, so every join key changes together.
3. Every tokenized column of every curated table is checked to hold only new-version tokens.
4. Only then is the old version retired (``min_decryption_version``):
   old tokens can no longer be revealed or produced.

Each step is an audit event with the operator as actor, under the operator's
`rotate-tokenization-key` token (read, rotate and configure that key; nothing else). If the
run fails, nothing is retired and ``--resume`` finishes the job without rotating again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
import pyarrow.compute as pc

from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.refusals import ActionFailed
from mlsec_platform.privacy.tokenization import TRANSIT_KEY
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.orchestrator import apply_environment, orchestrator_environment
from mlsec_platform.storage.snapshots import read_snapshot


class RotationError(ActionFailed, RuntimeError):
    """Re-tokenization did not complete; the old key version stays active."""


@dataclass
class RotationReport:
    from_version: int
    to_version: int
    run_id: str = ""
    tables_checked: dict[str, int] = field(default_factory=dict)


def stale_tokens(lake, version: int) -> dict[str, int]:
    """Tokenized column -> number of tokens not of ``version``, over all curated tables."""
    prefix = f"vault:v{version}:"
    stale = {}
    for spec in CATALOG.values():
        columns = [c.name for c in spec.columns if c.tokenized]
        if not columns:
            continue
        table = read_snapshot(lake, spec.zone, spec.name, columns=columns).table
        for name in columns:
            column = table.column(name)
            ok = pc.sum(pc.starts_with(column, prefix)).as_py() or 0
            stale[f"{spec.id}.{name}"] = len(column) - column.null_count - ok
    return stale


def rotate_tokenization_key(
    settings: PlatformSettings,
    instance: dg.DagsterInstance,
    echo: Callable[[str], None] = print,
    *,
    resume: bool = False,
) -> RotationReport:
    from mlsec_platform.definitions import defs
    from mlsec_platform.defs.resources import build_resources

    with operator_command(settings, "rotate-tokenization-key") as session:
        client, audit = session.vault, session.audit
        key = client.secrets.transit.read_key(TRANSIT_KEY)["data"]
        if resume:
            old, new = key["min_decryption_version"], key["latest_version"]
        else:
            old = key["latest_version"]
            client.secrets.transit.rotate_key(TRANSIT_KEY)
            new = client.secrets.transit.read_key(TRANSIT_KEY)["data"]["latest_version"]
            audit.emit("tokenization.key_rotated", {"from_version": old, "to_version": new})
            echo(f"Tokenization key rotated: v{old} -> v{new}")
        report = RotationReport(old, new)

        echo("Re-tokenizing: Silver -> Gold -> warehouse -> features")
        resources = build_resources(settings)
        result = (
            defs()
            .resolve_job_def("curated")
            .execute_in_process(
                instance=instance,
                raise_on_error=False,
                tags={"mlsec/trigger": "tokenization-key-rotation"},
            )
        )
        report.run_id = result.run_id
        if not result.success:
            audit.emit(
                "tokenization.retokenization_failed",
                {"to_version": new, "run_id": result.run_id},
                run_id=result.run_id,
            )
            raise RotationError(
                f"re-tokenization run {result.run_id} failed; v{old} stays active. "
                "Fix the cause, then run `mlsec rotate tokenization-key --resume`."
            )
        stale = stale_tokens(resources["lake_pipeline"], new)
        report.tables_checked = stale
        leftover = {k: v for k, v in stale.items() if v}
        if leftover:
            raise RotationError(f"tokens of older versions remain: {leftover}")
        audit.emit(
            "tokenization.retokenized",
            {"to_version": new, "run_id": result.run_id, "columns_checked": len(stale)},
            run_id=result.run_id,
        )
        # Below min_decryption_version nothing decrypts: old tokens are irreversible now.
        client.secrets.transit.update_key_configuration(TRANSIT_KEY, min_decryption_version=new)
        audit.emit("tokenization.key_retired", {"retired_below": new, "run_id": result.run_id})
        echo(f"Old versions retired: only v{new} tokens can be revealed now")
    return report


def rotate_in_stack_instance(
    settings: PlatformSettings, echo: Callable[[str], None] = print, *, resume: bool = False
) -> RotationReport:
    """:func:`rotate_tokenization_key` in the Dagster instance of the stack's environment."""
    apply_environment(orchestrator_environment(settings))
    with dg.DagsterInstance.get() as instance:
        report = rotate_tokenization_key(settings, instance, echo, resume=resume)
    echo(f"{len(report.tables_checked)} tokenized columns hold only v{report.to_version} tokens")
    return report
