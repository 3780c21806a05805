"""Identifiers inside free text (review comments) replaced by their tokens.

Customers write their e-mail address, phone number or CPF into comments. Those are direct
identifiers like the customer columns, so they get the same tokens: a column tagged
``scrubbed`` in the catalog names its ``token_domain`` (the customers' one for reviews), which
keeps them joinable and revealable through the token vault, and never clear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
CPF = r"\d{3}\.\d{3}\.\d{3}-\d{2}"
PHONE = r"(?:\+55\s?)?\(?\d{2}\)?\s?9?\d{4}-?\d{4}"
IDENTIFIERS = re.compile(f"{EMAIL}|{CPF}|{PHONE}")


@dataclass(frozen=True)
class FoundIdentifiers:
    """The identifiers in one text column, to be tokenized with the other columns of their
    domain (one lookup, one mint) and then put back in place of themselves."""

    values: pa.Array
    #: Which values hold an identifier.
    hits: pa.Array
    texts: list[str]
    #: Each identifier found, once.
    identifiers: pa.Array

    def replaced(self, tokens: pa.Array) -> pa.Array:
        """The column with each identifier replaced by its token (``tokens``: same order as
        :attr:`identifiers`)."""
        if not self.texts:
            return self.values
        token_of = dict(zip(self.identifiers.to_pylist(), tokens.to_pylist(), strict=True))
        scrubbed = [IDENTIFIERS.sub(lambda m: token_of[m.group(0)], t) for t in self.texts]
        return pc.replace_with_mask(self.values, self.hits, pa.array(scrubbed, pa.string()))


def find_identifiers(column: pa.Array | pa.ChunkedArray) -> FoundIdentifiers:
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = values.cast(pa.string())
    hits = pc.fill_null(pc.match_substring_regex(values, IDENTIFIERS.pattern), False)
    positions = pc.indices_nonzero(hits)
    texts = values.take(positions).to_pylist() if len(positions) else []
    found = sorted({m for text in texts for m in IDENTIFIERS.findall(text)})
    return FoundIdentifiers(values, hits, texts, pa.array(found, pa.string()))
