"""The data subject an erasure names: ``<kind>=<value>``, with kinds read from the catalog.

A kind is the name of a clear column of the catalog's data subject as it arrives in Raw: each
direct identifier the subject dataset tokenizes (``customer_cpf``, ``customer_email``, ...,
``customer_unique_id``, the person's own key) and each linked identifier that is a key of it
(``customer_id``, one order's customer). Nothing lists them by hand: a new tokenized column is
a new kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlsec_platform.catalog.datasets import CUSTOMERS
from mlsec_platform.catalog.governance import ColumnSpec, DataSubject, PiiKind
from mlsec_platform.errors import InvalidInput

#: Longest subject value accepted (a street address is the longest identifier).
MAX_VALUE_LENGTH = 512


class InvalidSubject(InvalidInput):
    """The ``--subject`` argument is not ``<kind>=<value>`` with a known kind; the message says
    which part is wrong (never the value)."""


@dataclass(frozen=True)
class SubjectKind:
    """One way to name a data subject: a clear column as in Raw, and the catalog column of it."""

    name: str
    #: The catalog column: its tokens (a direct identifier) or the key itself (linked).
    column: ColumnSpec

    @property
    def tokenized(self) -> bool:
        return self.column.tokenized


def subject_kinds(subject: DataSubject = CUSTOMERS) -> dict[str, SubjectKind]:
    """Kind name -> kind: the subject dataset's tokenized columns by their clear column, and
    its linked key columns by name."""
    kinds = {
        c.from_column: SubjectKind(c.from_column, c)
        for c in subject.dataset.columns
        if c.tokenized and c.from_column
    }
    for name in subject.dataset.key:
        column = subject.dataset.column(name)
        if column.pii is PiiKind.LINKED:
            kinds[name] = SubjectKind(name, column)
    return dict(sorted(kinds.items()))


@dataclass(frozen=True)
class Subject:
    """A data subject as named: its kind and its value (never shown: see ``__repr__``)."""

    kind: SubjectKind
    value: str

    def __repr__(self) -> str:
        return f"Subject({self.kind.name}=<{len(self.value)} characters>)"

    __str__ = __repr__


def parse_subject(text: str, subject: DataSubject = CUSTOMERS) -> Subject:
    """``<kind>=<value>`` as a :class:`Subject`; :class:`InvalidSubject` says what is wrong."""
    kinds = subject_kinds(subject)
    known = ", ".join(kinds)
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise InvalidSubject(f"a subject is <kind>=<value>, e.g. customer_cpf=...; kinds: {known}")
    if name not in kinds:
        shown = name if name.isidentifier() and len(name) <= 64 else "that kind"
        raise InvalidSubject(f"unknown subject kind {shown!r}; kinds: {known}")
    if not value:
        raise InvalidSubject(f"the subject's {name} is empty")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidSubject(f"the subject's {name} is longer than {MAX_VALUE_LENGTH} characters")
    if any(not ch.isprintable() for ch in value):
        raise InvalidSubject(f"the subject's {name} holds control characters")
    return Subject(kinds[name], value)
