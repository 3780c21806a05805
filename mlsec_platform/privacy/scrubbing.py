"""Identifiers inside free text (review comments) replaced by their tokens.

Customers write their e-mail address, phone number or CPF into comments. Those are direct
identifiers like the customer columns, so they get the same tokens: a column tagged
``scrubbed`` in the catalog names its ``token_domain`` (the customers' one for reviews), which
keeps them joinable and revealable through Vault, and never clear.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from mlsec_platform.privacy.tokenization import Tokenizer

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
CPF = r"\d{3}\.\d{3}\.\d{3}-\d{2}"
PHONE = r"(?:\+55\s?)?\(?\d{2}\)?\s?9?\d{4}-?\d{4}"
IDENTIFIERS = re.compile(f"{EMAIL}|{CPF}|{PHONE}")


def scrub(column: pa.Array | pa.ChunkedArray, tokenizer: Tokenizer, domain: str) -> pa.Array:
    """``column`` with every identifier found in it replaced by its token."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = values.cast(pa.string())
    hits = pc.fill_null(pc.match_substring_regex(values, IDENTIFIERS.pattern), False)
    positions = pc.indices_nonzero(hits).to_pylist()
    if not positions:
        return values
    texts = values.take(pa.array(positions)).to_pylist()
    found = sorted({m for text in texts for m in IDENTIFIERS.findall(text)})
    tokens = dict(
        zip(found, tokenizer.tokenize_distinct(pa.array(found), domain).to_pylist(), strict=True)
    )
    scrubbed = [IDENTIFIERS.sub(lambda m: tokens[m.group(0)], text) for text in texts]
    return pc.replace_with_mask(values, hits, pa.array(scrubbed, pa.string()))
