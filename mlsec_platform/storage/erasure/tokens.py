"""A data subject's tokens in the token vault: found before their rows go, forgotten after.

1. **Find** (:func:`find_tokens`): the vault's index looked up (``TokenVault.lookup``, which
   mints nothing) for every value Raw holds of the subject, read before anything is rewritten:
   their person key (whose token is ``customer_token``), their identifiers (name, CPF, e-mail,
   phone, ...) and the identifiers quoted in their own free text (a review naming a phone).
2. **Keep what others share**: a token also held by a row that is not the subject's (two
   people with the same name or phone share its token) is someone else's data too; it is left
   in the vault and out of every redaction. Every token is minted by a Silver asset, so the
   Silver tables' token and free-text columns are where others' references are found.
3. **Forget** (:func:`forget_tokens`), once no curated table refers to them any more: the rows
   are deleted from the vault's ``entries`` (``TokenVault.forget``, under the domain's mint
   lock, files vacuumed at once), then its history is cut like any erased table, so no older
   version or log entry keeps a sealed value or a statistic naming the token. Afterwards a
   reveal of those tokens returns nothing.

A re-run after a crash finds the same tokens again: Raw, where the values are read, is erased
last (``ops/erase.py``); tokens already forgotten are simply not found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

import pyarrow as pa
import pyarrow.compute as pc

from mlsec_platform.privacy.erasure.scope import ErasureScope, SubjectRecords, TableRule
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.erasure.delta import DeltaErasure, cut_history, plain_strings, row_mask
from mlsec_platform.storage.raw_writer import open_table
from mlsec_platform.storage.token_lock import advisory_lock
from mlsec_platform.storage.token_vault import FORGOTTEN_COMMIT, TokenVault

#: The vault table holding each token's sealed value.
ENTRIES = "entries"


def find_tokens(
    vault: TokenVault, curated: S3LakeResource, scope: ErasureScope, records: SubjectRecords
) -> None:
    """Fill ``records.tokens`` with the subject's own tokens (person token as a key too) and
    ``records.shared`` with the values and tokens others hold as well."""
    domain = scope.token_domain
    values = sorted(
        {*records.keys.get(scope.person_key, ()), *records.quoted}
        | {v for vs in records.identifiers.values() for v in vs}
    )
    found = vault.lookup(domain, values).to_pylist() if values else []
    token_of = {v: t for v, t in zip(values, found, strict=True) if t}
    person = {token_of[k] for k in records.keys.get(scope.person_key, ()) if k in token_of}
    for column in scope.person_token_columns:
        records.add_keys(column, person)
    theirs = set(token_of.values())
    shared = theirs & _held_by_others(curated, scope, records, theirs) - person
    records.tokens = theirs - shared
    records.shared = shared | {v for v, t in token_of.items() if t in shared}


def _held_by_others(
    lake: S3LakeResource, scope: ErasureScope, records: SubjectRecords, tokens: set[str]
) -> set[str]:
    """Those of ``tokens`` a Silver row that is not the subject's holds."""
    wanted = pa.array(sorted(tokens), pa.string())
    held: set[str] = set()
    for dataset_id, rule in scope.curated.items():
        spec = scope.dataset(dataset_id)
        columns = [c.name for c in spec.columns if c.tokenized or c.scrubbed]
        if spec.zone is not Zone.SILVER or not columns or not tokens:
            continue
        table = open_table(lake.table_uri(spec.zone, spec.name), lake.storage_options())
        if table is None:
            continue
        data = table.to_pyarrow_dataset()
        present = set(data.schema.names)
        read = plain_strings(data.to_table(columns=sorted({*columns, *rule.match} & present)))
        others = read.filter(pc.invert(row_mask(read, _present(rule, present), records.keys)))
        for column in columns:
            if column not in present:
                continue
            values = others.column(column)
            if spec.column(column).scrubbed:
                held |= _quoted_in(values, tokens)
            else:
                held |= set(values.filter(pc.is_in(values, wanted)).unique().to_pylist())
    return held


def _present(rule: TableRule, present: set[str]) -> TableRule:
    return TableRule(tuple(c for c in rule.match if c in present))


def _quoted_in(texts: pa.ChunkedArray, tokens: Iterable[str]) -> set[str]:
    return {t for t in tokens if pc.any(pc.fill_null(pc.match_substring(texts, t), False)).as_py()}


def forget_tokens(
    lake: S3LakeResource,
    domain: str,
    tokens: set[str],
    connection: Callable[[], AbstractContextManager],
) -> DeltaErasure | None:
    """Delete ``tokens`` from ``domain``'s vault and cut its history; None if no vault."""
    vault = TokenVault.on_lake(lake, lock=lambda d: advisory_lock(connection, d))
    name = f"{domain}/{ENTRIES}"
    table = open_table(lake.table_uri(Zone.TOKENS, name), lake.storage_options())
    if table is None:
        return None
    before, removed, vacuumed = table.version(), 0, 0
    held = sorted(set(vault.entries(domain, sorted(tokens)).column("token").to_pylist()))
    if held:  # else no commit at all: a re-run leaves the vault as it is
        done = vault.forget(domain, held, retention_hours=0)
        removed, vacuumed = done.removed, len(done.vacuumed)
        table.update_incremental()
    # A forget whose cut a crash prevented is still in the log: cut it now.
    if not removed and not any(FORGOTTEN_COMMIT in e for e in table.history()):
        return DeltaErasure(f"{Zone.TOKENS.value}/{name}", version_before=before)
    cut, files, log = cut_history(lake, Zone.TOKENS, name)
    return DeltaErasure(
        f"{Zone.TOKENS.value}/{name}",
        rows_removed=removed,
        version_before=before,
        version_after=cut,
        files_removed=files + vacuumed,
        log_entries_removed=log,
    )
