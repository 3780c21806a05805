"""The content checks of files (and the text of refusals), as pure functions: what they refuse, with which
status and reason, and that they keep what was sent (no silent changes)."""

from __future__ import annotations

import pytest

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.sources import validation
from mlsec_platform.sources.validation import (
    Rejected,
    neutralize_formulas,
    validate_file,
)

SELLERS = FILE_SOURCES["olist_sellers"]
HEADER = "seller_id,seller_zip_code_prefix,seller_city,seller_state"


def _refusal(check, *args) -> Rejected:
    with pytest.raises(Rejected) as refused:
        check(*args)
    return refused.value


def test_a_nul_anywhere_in_a_file_refuses_the_whole_file():
    body = (HEADER + "\n" + "s1,01001,x,SP\n" * 20_000 + "s2,0\x001,x,SP\n").encode()
    assert len(body) > 4 * 65536  # far past any sniffing window
    refusal = _refusal(validate_file, body, SELLERS)
    assert refusal.status == 415 and "NUL" in refusal.reason
    nul_at = body.index(b"\x00")
    assert f"offset {nul_at}" in refusal.reason and "line 20002" in refusal.reason


HOSTILE_FILES = {
    "CR-only line endings are lines": (HEADER + "\rs1,01001,x,SP\rs2,02002,y,RJ\r", None),
    "a CR inside the header": (
        "seller_id,seller_zip\r_code_prefix,seller_city,seller_state\ns1,1,x,SP\n",
        "header does not match",
    ),
    "a header field over the CSV module's limit": (
        HEADER + "x" * 200_000 + "\ns1,1,x,SP\n",
        "header",
    ),
    "a quoted header that never closes": ('"seller_id,x\ns1,1,x,SP\n', "header"),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES), ids=list(HOSTILE_FILES))
def test_hostile_csv_is_a_4xx_with_a_reason_never_a_crash(case):
    text, reason = HOSTILE_FILES[case]
    if reason is None:  # accepted: CR alone ends a line for the parser and the header check
        table, _ = validate_file(text.encode(), SELLERS)
        assert table.column("seller_state").to_pylist() == ["SP", "RJ"]
        return
    refusal = _refusal(validate_file, text.encode(), SELLERS)
    assert refusal.status == 422 and reason in refusal.reason


def test_raw_keeps_null_words_as_text_only_an_empty_field_is_null():
    words = ["NULL", "NA", "nan", "#N/A", "null", "N/A", "NaN", "None", "n/a", "1.#QNAN", "#NA"]
    rows = "".join(f"s{i},{w},{w},\n" for i, w in enumerate(words))
    table, _ = validate_file((HEADER + "\n" + rows + 's99,"",x,SP\n').encode(), SELLERS)
    assert table.column("seller_zip_code_prefix").to_pylist() == [*words, ""]
    assert table.column("seller_city").to_pylist() == [*words, "x"]
    assert table.column("seller_state").to_pylist() == [None] * len(words) + ["SP"]


FORMULAS = [
    "=1+1",
    ' =HYPERLINK("http://x")',
    "\u00a0=cmd",
    "\u3000=cmd",
    "\uff1dHYPERLINK(1)",
    "\u200b=1",
    "\ufeff=1",
    "\u2060\u200d=1",
    "  @SUM(A1)",
    "\uff0bcmd",
    "\t12",
    "\r=1",
]
INERT = ["-12.5", "+55 (11) 91234-5678", " -3", "hello = world", "a=b", "", "\u00a0text"]


def test_formulas_a_spreadsheet_still_runs_are_neutralized_plain_text_is_not():
    import pyarrow as pa

    table = pa.table({"cell": pa.array(FORMULAS + INERT)})
    neutralized, changed = neutralize_formulas(table)
    cells = neutralized.column("cell").to_pylist()
    assert cells[: len(FORMULAS)] == ["'" + f for f in FORMULAS]
    assert cells[len(FORMULAS) :] == INERT
    assert changed == len(FORMULAS)


# Property tests: whatever arrives, a check either passes or refuses with a typed 4xx.

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mlsec_platform_tests.sources.properties import PROPERTY, refused_typed_or_passed  # noqa: E402

_CSV_TEXT = st.text(
    alphabet=st.sampled_from(
        list(",\"\r\n\t =+-@\x00\\'") + ["a", "1", "\u00a0", "\u200b", "\uff1d", "é", "\ud800"]
    ),
    max_size=300,
)


@PROPERTY
@given(st.binary(max_size=400))
def test_any_bytes_as_a_file_pass_or_are_refused_with_a_4xx(body):
    refused_typed_or_passed(validate_file, body, SELLERS)


@PROPERTY
@given(header_tail=_CSV_TEXT, rows=_CSV_TEXT)
def test_any_csv_like_text_passes_or_is_refused_with_a_4xx(header_tail, rows):
    body = (HEADER + header_tail + "\n" + rows).encode("utf-8", errors="surrogatepass")
    checked = refused_typed_or_passed(validate_file, body, SELLERS)
    if checked is not None:  # accepted: nothing in it a spreadsheet would still run
        table, _ = checked
        for column in table.columns:
            for cell in column.to_pylist():
                assert cell is None or b"\x00" not in cell.encode()


@PROPERTY
@given(st.text(), st.integers(min_value=1, max_value=200))
def test_caller_text_in_a_reason_is_ascii_bounded_and_has_no_control_characters(text, limit):
    shown = validation.escaped(text, limit)
    assert shown.isascii() and len(shown) <= limit + len("...")
    assert not any(ord(c) < 32 or ord(c) == 127 for c in shown)
    if len(text) <= limit and text.isprintable() and text.isascii() and "\\" not in text:
        assert shown == text  # plain names are shown as they are
