"""The catalog's types: governance tags of a column, and a dataset made of such columns.

The declarations are in :mod:`mlsec_platform.catalog.datasets`. The catalog is the single
source of truth for

* the column schema (names, Arrow types, nullability) that Silver/Gold/feature assets write and
  their pandera gates check (:mod:`mlsec_platform.quality.schemas`);
* privacy: which columns are direct identifiers (tokenized: from which clear column, in which
  tokenization domain), quasi-identifiers (generalised where ``generalised`` says how, from
  which clear column), free text with identifiers replaced by tokens (``scrubbed``) or none of
  these, and each column's sensitivity. Silver applies exactly this
  (:mod:`mlsec_platform.privacy.deidentify`); no other list says it;
* access: the purposes a dataset may be read for, the masking rule applied below a column's
  sensitivity and the row-security key the warehouse's RLS and the Access Broker filter on.

Dagster shows all of it (``dagster/column_schema`` with tags per column, tags per asset; the
adapters are in :mod:`mlsec_platform.defs.catalog`), and the broker reads it from here. This
module imports no Dagster and no client: the broker and the gateway read it without them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

import pyarrow as pa

from mlsec_platform.settings import Zone


class PiiKind(StrEnum):
    DIRECT = "direct_identifier"
    QUASI = "quasi_identifier"
    #: A pseudonymous key that ties the row to one person's records (an order's customer id,
    #: an item's order id): no personal data in itself, but the row is about a person.
    LINKED = "linked_identifier"
    NONE = "none"


class Sensitivity(IntEnum):
    """Ordered: a reader's clearance must be at least a column's sensitivity to see it clear."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Mask(StrEnum):
    """What a reader below the column's sensitivity gets instead of the value."""

    NONE = "none"
    REDACT = "redact"
    PARTIAL_EMAIL = "partial_email"
    LAST_DIGITS = "last_digits"
    KEYED_HASH = "keyed_hash"
    NULL = "null"
    ROUND = "round"
    TRUNCATE_DATE = "truncate_date"


class Generalisation(StrEnum):
    """How a quasi-identifier is made coarser than its clear value (the value is the tag shown)."""

    ZIP3 = "zip prefix (5 digits) -> first 3 digits"
    EMAIL_DOMAIN = "e-mail -> its domain"
    PHONE_AREA_CODE = "phone -> area code"


#: A tokenization domain has a token vault of its own: tokens join only within one domain.
TOKEN_DOMAIN_SHAPE = re.compile(r"[a-z][a-z0-9_]*")
#: What a tokenized column holds: ``tok_`` and 22 random characters (``privacy/tokens.py``).
TOKEN_PATTERN = re.compile(r"tok_[-0-9A-Za-z_]{22}")


class Purpose(StrEnum):
    ANALYTICS = "analytics"
    OPERATIONS = "operations"
    CUSTOMER_SUPPORT = "customer_support"
    FRAUD = "fraud_prevention"
    MARKETING = "marketing"
    ML = "ml_training"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: pa.DataType
    description: str
    pii: PiiKind = PiiKind.NONE
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    mask: Mask = Mask.NONE
    nullable: bool = True
    #: Holds tokens of a direct identifier (reveal through the token vault and OpenBao only).
    tokenized: bool = False
    #: How a quasi-identifier was generalised from its clear value (None: kept as is).
    generalised: Generalisation | None = None
    #: The clear column this one is made from, as the Silver transform outputs it (named as in
    #: Raw): its tokens when ``tokenized``, its generalisation when ``generalised``. Silver
    #: drops it once used, so it never reaches a curated table.
    from_column: str | None = None
    #: Tokenization domain (the token vault) of the tokens this column holds: the
    #: whole value when ``tokenized``, each identifier found in the text when ``scrubbed``.
    token_domain: str | None = None
    #: Free text in which e-mail addresses, CPFs and phone numbers are replaced by their tokens.
    scrubbed: bool = False

    def __post_init__(self) -> None:
        if self.pii is PiiKind.DIRECT and not self.tokenized:
            raise ValueError(f"{self.name}: a direct identifier must be stored tokenized")
        if (
            self.sensitivity > Sensitivity.PUBLIC
            and self.mask is Mask.NONE
            and self.pii
            in (
                PiiKind.DIRECT,
                PiiKind.QUASI,
            )
        ):
            raise ValueError(f"{self.name}: personal data needs a masking rule")
        self._check_privacy()

    def _check_privacy(self) -> None:
        """The privacy fields say one complete thing, or the entry fails at import."""
        name = self.name
        if self.generalised is not None:
            try:
                object.__setattr__(self, "generalised", Generalisation(self.generalised))
            except ValueError:
                known = "; ".join(f"{g.name} ({g.value})" for g in Generalisation)
                raise ValueError(
                    f"{name}: unknown generalisation {self.generalised!r}; known: {known}"
                ) from None
        kinds = [k for k in ("tokenized", "generalised", "scrubbed") if getattr(self, k)]
        if len(kinds) > 1:
            raise ValueError(
                f"{name}: a column is at most one of tokenized, generalised or "
                f"scrubbed, not {' and '.join(kinds)}"
            )
        if kinds and self.type != pa.string():
            raise ValueError(f"{name}: a {kinds[0]} column holds text, not {self.type}")
        if (self.tokenized or self.generalised) and not self.from_column:
            raise ValueError(
                f"{name}: a {kinds[0]} column needs from_column, the clear column "
                "(as the Silver transform outputs it) its values are made from"
            )
        if self.from_column and not (self.tokenized or self.generalised):
            raise ValueError(
                f"{name}: from_column {self.from_column!r} is only for tokenized "
                "or generalised columns"
            )
        if (self.tokenized or self.scrubbed) and not self.token_domain:
            raise ValueError(
                f"{name}: tokens need a token_domain, the token vault they are made in "
                "(e.g. 'customers')"
            )
        if self.token_domain and not (self.tokenized or self.scrubbed):
            raise ValueError(
                f"{name}: token_domain {self.token_domain!r} is only for tokenized "
                "or scrubbed columns"
            )
        if self.token_domain and not TOKEN_DOMAIN_SHAPE.fullmatch(self.token_domain):
            raise ValueError(
                f"{name}: token_domain {self.token_domain!r} must be lowercase "
                "letters, digits and underscores, starting with a letter"
            )
        if self.generalised and self.pii is not PiiKind.QUASI:
            raise ValueError(
                f"{name}: a generalised column is a quasi-identifier "
                f"(pii={PiiKind.QUASI.name}), not {self.pii.name}"
            )

    def tags(self) -> dict[str, str]:
        tags = {
            "pii": self.pii.value,
            "sensitivity": self.sensitivity.label,
            "mask": self.mask.value,
        }
        if self.tokenized:
            tags["tokenized"] = "token-vault"
        if self.generalised:
            tags["generalised"] = self.generalised.value
        if self.scrubbed:
            tags["scrubbed"] = "identifiers -> tokens"
        if self.token_domain:
            tags["token_domain"] = self.token_domain
        if self.from_column:
            tags["from"] = self.from_column
        return tags


@dataclass(frozen=True)
class FeatureGroup:
    """A feature dataset served by entity: the group's name, the column its rows are keyed by,
    and the warehouse table holding the latest row per entity (the online store)."""

    name: str
    entity: str
    online_schema: str
    online_name: str

    @property
    def online_table(self) -> str:
        """``<schema>.<table>`` of the online store in the warehouse."""
        return f"{self.online_schema}.{self.online_name}"


@dataclass(frozen=True)
class DatasetSpec:
    zone: Zone
    name: str
    domain: str
    description: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    purposes: frozenset[Purpose]
    row_security_key: str | None = None
    version: int = 1
    tags: dict[str, str] = field(default_factory=dict)
    #: Set on a feature dataset served by entity (feature vectors, point-in-time lookups).
    feature_group: FeatureGroup | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.id}: duplicate column names")
        for name in (*self.key, *([self.row_security_key] if self.row_security_key else [])):
            if name not in names:
                raise ValueError(f"{self.id}: key column {name!r} is not a column")
        if self.feature_group is not None and self.feature_group.entity not in names:
            raise ValueError(f"{self.id}: entity {self.feature_group.entity!r} is not a column")

    @property
    def id(self) -> str:
        return f"{self.zone.value}/{self.name}"

    @property
    def asset_path(self) -> tuple[str, str]:
        """The Dagster asset key's path: ``(zone, name)``."""
        return (self.zone.value, self.name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.id} has no column {name!r}")

    @property
    def sensitivity(self) -> Sensitivity:
        return max(c.sensitivity for c in self.columns)

    @property
    def person_level(self) -> bool:
        """Rows are about people: a column holds personal data or links the row to a person.
        Without a row-security key, a project's row scope cannot narrow such a dataset."""
        return any(c.pii is not PiiKind.NONE for c in self.columns)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def conform(self, table: pa.Table, *, nullability: bool = True) -> pa.Table:
        """``table`` with exactly the catalog's columns, in order, cast to the catalog types
        (and nullability, unless ``nullability`` is False: the gate checks it itself)."""
        missing = [n for n in self.column_names if n not in table.column_names]
        extra = [n for n in table.column_names if n not in self.column_names]
        if missing or extra:
            raise ValueError(f"{self.id}: columns differ from the catalog: {missing=} {extra=}")
        schema = self.arrow_schema()
        if not nullability:
            schema = pa.schema([f.with_nullable(True) for f in schema])
        return table.select(self.column_names).cast(schema)

    def asset_tags(self) -> dict[str, str]:
        return {
            "zone": self.zone.value,
            "domain": self.domain,
            "sensitivity": self.sensitivity.label,
            **({"pii": "true"} if self.person_level else {}),
            **self.tags,
        }


@dataclass(frozen=True)
class DataSubject:
    """Who a data subject (LGPD art. 18: a person who may ask to be erased) is in the catalog.

    ``dataset`` holds one row per record of a person with their direct identifiers (tokenized,
    each from its clear column as named in Raw), and ``person`` is the tokenized column that
    names the same person in every table (its ``from_column`` is the person's own key). Where
    else a person's data lives follows from the other tags: linked identifiers
    (:attr:`PiiKind.LINKED`) tie rows to them, scrubbed free text may quote their identifiers.
    """

    dataset: DatasetSpec
    person: ColumnSpec

    def __post_init__(self) -> None:
        if self.person not in self.dataset.columns or not self.person.tokenized:
            raise ValueError(
                f"{self.dataset.id}: the person column {self.person.name!r} must be one of its "
                "tokenized columns"
            )
