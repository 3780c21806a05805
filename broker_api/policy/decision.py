"""What the policy engine answers: a :class:`Decision`, with its mask result
(:class:`ColumnMasks`) and its row-filter result (:class:`RowFilter`) as types of their own."""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker_api.limits import Limits
from mlsec_platform.catalog.governance import DatasetSpec, Mask


@dataclass(frozen=True)
class RowFilter:
    """The row-filter result of a decision: only rows whose ``column`` is one of ``values``
    (no values: no rows)."""

    column: str
    values: tuple[str, ...]

    def audit(self) -> dict[str, Any]:
        return {"column": self.column, "values": list(self.values)}


class ColumnMasks(Mapping[str, Mask]):
    """The mask result of a decision: each returned column that is masked, and its mask (the
    other columns are clear). Read-only."""

    __slots__ = ("_masks",)

    def __init__(self, masks: dict[str, Mask] | None = None) -> None:
        self._masks = {} if masks is None else masks  # handed over: nothing else keeps it

    def __getitem__(self, column: str) -> Mask:
        return self._masks[column]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    # The dict's own lookups: Mapping's would raise and catch a KeyError per clear column.
    def __contains__(self, column: object) -> bool:
        return column in self._masks

    def get(self, column: str, default: Mask | None = None) -> Mask | None:  # type: ignore[override]
        return self._masks.get(column, default)

    def items(self) -> ItemsView[str, Mask]:
        return self._masks.items()

    def __repr__(self) -> str:
        return f"ColumnMasks({self._masks!r})"

    def of(self, columns: Iterable[str]) -> ColumnMasks:
        """The masks of those of ``columns`` that are masked."""
        return ColumnMasks({c: self._masks[c] for c in columns if c in self._masks})

    def audit(self) -> list[dict[str, str]]:
        # A list, not a map keyed by column: column names are data, not audit field names.
        return [{"column": c, "mask": m.value} for c, m in self._masks.items()]


NO_MASKS = ColumnMasks()


@dataclass(frozen=True)
class Decision:
    """The answer to one request. A denial carries its status and reason; its column, mask,
    reveal and row fields are empty and must not be used."""

    #: A new uuid4 (hex) per decision, for the audit trail.
    id: str
    allowed: bool
    #: 200 allowed, 400 malformed (bad column, ``*``, bad reveal), 403 denied, 404 unknown dataset.
    status: int
    #: Safe to show the client: names rules, datasets, columns and purposes, never data.
    reason: str
    #: The rules that decided, e.g. ``role:analyst``, ``catalog:purposes``, ``project:olist-br``.
    policy_ids: tuple[str, ...]
    policy_version: str
    dataset: str | None
    #: The columns to return, in request order.
    columns: tuple[str, ...]
    #: The mask of each returned column that is masked (other columns are clear).
    masks: ColumnMasks = field(hash=False)
    #: Tokenized columns to return revealed (in clear), in request order.
    revealed: tuple[str, ...]
    #: The rows the principal may read; None: all rows.
    row_filter: RowFilter | None
    limits: Limits
    #: The catalog entry the engine resolved ``dataset`` to (None: not in its catalog); what
    #: serves the request reads this one, never the catalog again.
    spec: DatasetSpec | None = field(default=None, compare=False, hash=False, repr=False)
