"""Does a committed Raw table still match its source contract? Its columns are the contract's
and the connector's lineage columns, and no row lacks a value the contract requires. Read at
the table's current Delta version, required columns only (Raw holds personal data: what is
reported is counts, column names and batch ids, never a value)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

#: Batch ids of failing rows reported at most.
MAX_BATCHES = 20


@dataclass(frozen=True)
class Conformance:
    version: int
    rows: int
    missing: list[str]
    unexpected: list[str]
    failing_rows: int
    failing_batches: list[str]

    @property
    def passed(self) -> bool:
        return not (self.missing or self.unexpected or self.failing_rows)


def raw_conformance(
    table: DeltaTable, columns: Sequence[str], required: Sequence[str]
) -> Conformance:
    """``table`` (a Raw table) against ``columns`` (contract and lineage columns, in order)
    and the contract's ``required`` columns (never null nor empty)."""
    present = [f.name for f in table.schema().to_arrow()]
    missing = [c for c in columns if c not in present]
    unexpected = [c for c in present if c not in columns]
    wanted = [c for c in required if c in present]
    data = table.to_pyarrow_dataset().to_table(columns=[*wanted, "_batch_id"])
    bad = pa.array([False] * data.num_rows, pa.bool_())
    for name in wanted:
        column = data.column(name)
        empty = pc.equal(pc.utf8_trim_whitespace(column.cast(pa.string())), "")
        bad = pc.or_(bad, pc.or_kleene(pc.is_null(column), pc.fill_null(empty, False)))
    failing = data.filter(bad)
    batches = sorted(set(failing.column("_batch_id").drop_null().to_pylist()))[:MAX_BATCHES]
    return Conformance(
        table.version(), data.num_rows, missing, unexpected, failing.num_rows, batches
    )
