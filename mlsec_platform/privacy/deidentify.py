"""De-identification of a Silver batch, exactly as its catalog entry tags it.

The Silver transform outputs typed rows with personal data still clear, named as in Raw. This
step then, from the catalog only:

* computes each ``generalised`` column from its ``from_column``;
* replaces each ``tokenized`` column's ``from_column`` by its tokens in its ``token_domain``;
* replaces identifiers in each ``scrubbed`` free-text column by their tokens;
* asks the token vault once per domain for every value of that domain (columns and the
  identifiers found in text), so each distinct value is looked up once and the new ones are
  minted in one commit;
* drops the clear columns it used, so none reaches the zone.

The gate then checks the batch against the same catalog entry (exact columns, token shapes).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa

from mlsec_platform.catalog.governance import ColumnSpec, DatasetSpec
from mlsec_platform.errors import MlsecError
from mlsec_platform.privacy.generalisation import generalised_columns
from mlsec_platform.privacy.scrubbing import FoundIdentifiers, find_identifiers
from mlsec_platform.privacy.tokens import Tokenizer

#: How the identifiers found in a scrubbed column are named beside the tokenized columns
#: (no column name starts with a space).
_IN_TEXT = " identifiers in "


class PrivacyPlanError(MlsecError, ValueError):
    """A catalog entry's privacy tags cannot be applied to its dataset or to a batch."""


@dataclass(frozen=True)
class PrivacyPlan:
    """What one dataset's Silver asset does to each batch, read from its catalog entry."""

    dataset: str
    tokenized: tuple[ColumnSpec, ...]
    generalised: tuple[ColumnSpec, ...]
    scrubbed: tuple[ColumnSpec, ...]
    #: Clear columns of the transform's output that are used here and never stored.
    clear_columns: tuple[str, ...]

    @classmethod
    def of(cls, spec: DatasetSpec) -> PrivacyPlan:
        """The plan of ``spec``; an entry that would keep a clear identifier raises."""
        names = set(spec.column_names)
        tokenized = tuple(c for c in spec.columns if c.tokenized)
        for c in tokenized:
            if c.from_column != c.name and c.from_column in names:
                raise PrivacyPlanError(
                    f"{spec.id}.{c.name}: its clear column {c.from_column!r} is also a column "
                    "of the dataset; a tokenized identifier must not be stored clear beside it"
                )
        generalised = tuple(c for c in spec.columns if c.generalised)
        used = {c.from_column for c in (*tokenized, *generalised)}
        return cls(
            dataset=spec.id,
            tokenized=tokenized,
            generalised=generalised,
            scrubbed=tuple(c for c in spec.columns if c.scrubbed),
            clear_columns=tuple(sorted(used - names)),
        )

    @property
    def needs_tokenizer(self) -> bool:
        return bool(self.tokenized or self.scrubbed)

    def apply(self, table: pa.Table, tokenizer: Tokenizer | None) -> pa.Table:
        """``table`` (the transform's output) de-identified as the catalog says."""
        if self.needs_tokenizer and tokenizer is None:
            raise PrivacyPlanError(f"{self.dataset}: tokens need the token vault")
        self._check_input(table)
        made = generalised_columns(table, self.generalised)
        by_domain: dict[str, dict[str, pa.Array]] = defaultdict(dict)
        for c in self.tokenized:
            by_domain[c.token_domain][c.name] = table.column(c.from_column)
        found: dict[str, FoundIdentifiers] = {}
        for c in self.scrubbed:
            found[c.name] = find_identifiers(table.column(c.name))
            by_domain[c.token_domain][_IN_TEXT + c.name] = found[c.name].identifiers
        for domain, columns in by_domain.items():
            tokens = tokenizer.tokenize_many(columns, domain)
            for name, values in tokens.items():
                if name.startswith(_IN_TEXT):
                    name = name.removeprefix(_IN_TEXT)
                    values = found[name].replaced(values)
                made[name] = values
        return _with_columns(table, made).drop_columns(list(self.clear_columns))

    def generalise(self, table: pa.Table) -> pa.Table:
        """``table`` with its generalised columns added and nothing else changed: identifiers
        stay clear (for the benchmark's ungoverned baseline, which Gold reads the same way)."""
        self._check_input(table)
        return _with_columns(table, generalised_columns(table, self.generalised))

    def _check_input(self, table: pa.Table) -> None:
        present = set(table.column_names)
        needed = {c.from_column for c in (*self.tokenized, *self.generalised)}
        needed |= {c.name for c in self.scrubbed}
        missing = sorted(needed - present)
        if missing:
            raise PrivacyPlanError(
                f"{self.dataset}: the transform's output lacks {missing}, which the catalog "
                "makes tokens or generalised values from"
            )
        made_by_transform = sorted(
            c.name
            for c in (*self.tokenized, *self.generalised)
            if c.name in present and c.name != c.from_column
        )
        if made_by_transform:
            raise PrivacyPlanError(
                f"{self.dataset}: the transform outputs {made_by_transform} itself; it must "
                "output their clear columns (from_column) and leave tokens and generalisation "
                "to the catalog"
            )


def _with_columns(table: pa.Table, columns: dict[str, pa.Array]) -> pa.Table:
    for name, values in columns.items():
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, values)
        else:
            table = table.append_column(name, values)
    return table
