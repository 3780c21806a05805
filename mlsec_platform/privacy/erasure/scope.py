"""Where a data subject's data lives, read from the catalog's tags, and how a table's rows are
found to be about them.

* The person's own key is the clear column the catalog's person token is made from
  (``customer_unique_id``); their identifiers are the clear columns of every tokenized column of
  the subject dataset (name, CPF, e-mail, phone, address and that key).
* Linked identifiers (``PiiKind.LINKED``: ``customer_id``, ``order_id``) tie other rows to
  them: a row is the subject's when a key column holds one of their keys. Linked ids keep their
  names from Raw to Gold, so one rule serves Raw, Cold, the curated zones and the warehouse.
* Scrubbed free text may quote anyone's identifiers (a review naming another customer's
  e-mail): there the subject's identifiers and their tokens are replaced by
  :data:`REDACTED`, and the row stays.

Rows are never matched by a shared value (two people may share a phone): only by the
subject's keys. Aggregates without any of these columns (monthly KPIs) hold no person's row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from mlsec_platform.catalog.datasets import CATALOG, CUSTOMERS
from mlsec_platform.catalog.governance import DatasetSpec, DataSubject, PiiKind
from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES

#: What an identifier quoted in free text becomes.
REDACTED = "[erased]"


@dataclass(frozen=True)
class TableRule:
    """How one table's rows are about the subject: key columns to match, free text to redact."""

    match: tuple[str, ...]
    free_text: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.match or self.free_text)


@dataclass(frozen=True)
class ErasureScope:
    """The catalog's answer to "where can a data subject's data be?"."""

    subject: DataSubject = CUSTOMERS

    @cached_property
    def person_key(self) -> str:
        """The clear column naming the person (``customer_unique_id``)."""
        assert self.subject.person.from_column is not None
        return self.subject.person.from_column

    @cached_property
    def token_domain(self) -> str:
        assert self.subject.person.token_domain is not None
        return self.subject.person.token_domain

    @cached_property
    def identifiers(self) -> tuple[str, ...]:
        """Clear columns of the subject's direct identifiers, as named in Raw."""
        return tuple(
            c.from_column for c in self.subject.dataset.columns if c.tokenized and c.from_column
        )

    @cached_property
    def person_token_columns(self) -> frozenset[str]:
        """Curated columns holding the person's token (``customer_token``)."""
        return frozenset(
            c.name
            for spec in CATALOG.values()
            for c in spec.columns
            if c.tokenized and c.from_column == self.person_key
        )

    @cached_property
    def linked(self) -> frozenset[str]:
        """Columns that link a row to a person (``customer_id``, ``order_id``)."""
        return frozenset(
            c.name for spec in CATALOG.values() for c in spec.columns if c.pii is PiiKind.LINKED
        )

    @cached_property
    def free_text(self) -> frozenset[str]:
        """Free-text columns that may quote identifiers (the catalog's scrubbed columns; Raw
        names them the same)."""
        return frozenset(c.name for spec in CATALOG.values() for c in spec.columns if c.scrubbed)

    @property
    def key_columns(self) -> frozenset[str]:
        return frozenset({self.person_key, *self.linked, *self.person_token_columns})

    def rule(self, columns: Iterable[str]) -> TableRule:
        names = list(columns)
        return TableRule(
            match=tuple(c for c in names if c in self.key_columns),
            free_text=tuple(c for c in names if c in self.free_text),
        )

    @cached_property
    def raw_tables(self) -> dict[str, tuple[str, ...]]:
        """Every Raw (and Cold) table by source, with its columns, that may hold the subject."""
        tables = {name: tuple(c.column_names) for name, c in FILE_SOURCES.items()}
        tables |= {c.source: tuple(c.fields) for c in EVENT_DOMAINS.values()}
        return {name: cols for name, cols in sorted(tables.items()) if self.rule(cols)}

    @cached_property
    def person_source(self) -> str:
        """The Raw table the subject dataset is made from: it holds every identifier clear."""
        wanted = {*self.identifiers, *self.subject.dataset.key}
        found = [name for name, cols in self.raw_tables.items() if wanted <= set(cols)]
        if len(found) != 1:
            raise ValueError(f"{self.subject.dataset.id}: no single Raw table holds {wanted}")
        return found[0]

    @cached_property
    def curated(self) -> dict[str, TableRule]:
        """Curated dataset id -> its rule, for the datasets that can hold a person's row."""
        return {
            spec.id: rule for spec in CATALOG.values() if (rule := self.rule(spec.column_names))
        }

    def dataset(self, dataset_id: str) -> DatasetSpec:
        return CATALOG[dataset_id]


@dataclass
class SubjectRecords:
    """What was found of one subject: their keys by column (``customer_unique_id``,
    ``customer_id``, ``order_id``, ``customer_token``), their identifier values by clear column,
    the identifiers their own free text quotes, their tokens in the token vault, and which of
    those values and tokens someone else holds too (left alone). Held in memory for the
    erasure only, never written."""

    keys: dict[str, set[str]] = field(default_factory=dict)
    identifiers: dict[str, set[str]] = field(default_factory=dict)
    quoted: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    shared: set[str] = field(default_factory=set)

    def __repr__(self) -> str:
        counts = {k: len(v) for k, v in self.keys.items()}
        return f"SubjectRecords(keys={counts}, tokens={len(self.tokens)})"

    @property
    def found(self) -> bool:
        return any(self.keys.values())

    def add_keys(self, column: str, values: Iterable[str | None]) -> bool:
        """Add key values; True if any was new."""
        held = self.keys.setdefault(column, set())
        before = len(held)
        held.update(v for v in values if v)
        return len(held) > before

    def text_needles(self) -> list[str]:
        """What free text may quote: identifier values and their tokens that are the
        subject's alone, longest first (so a redaction never leaves the tail of a longer one)."""
        values = {v for vs in self.identifiers.values() for v in vs} | self.tokens
        values -= self.shared
        return sorted((v for v in values if len(v) >= 3), key=lambda v: (-len(v), v))

    def needles(self) -> list[str]:
        """Every string that names the subject: identifiers, keys and tokens, longest first."""
        keys = {v for vs in self.keys.values() for v in vs}
        return sorted({*self.text_needles(), *keys}, key=lambda v: (-len(v), v))
