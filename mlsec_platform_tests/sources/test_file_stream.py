"""The file checks over a stream agree with the checks over a whole body, however the body
is cut into blocks, and the neutralized file they store matches the whole-body rewrite."""

from __future__ import annotations

import io
import tempfile

import pyarrow.csv as pacsv
import pytest

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.sources.file_stream import BATCH_BYTES, FileStream
from mlsec_platform.sources.validation import Rejected, validate_file

SELLERS = FILE_SOURCES["olist_sellers"]
HEADER = b"seller_id,seller_zip_code_prefix,seller_city,seller_state\n"

BODIES = {
    "good": HEADER + "s1,01001,São Paulo,SP\ns2,20000,Rio,RJ\n".encode(),
    "bom": b"\xef\xbb\xbf" + HEADER + b"s1,01001,x,SP\n",
    "formulas": HEADER + b's3,=HYPERLINK("x"),@SUM(A1),-12.5\ns4,+cmd|x,+55 (11) 9,\t=1\n',
    "quoted newline": HEADER + b's1,01001,"Sao\nPaulo",SP\n',
    "wrong header": b"seller,zip,city,state\ns1,1,x,SP\n",
    "zip": b"PK\x03\x04" + bytes(range(256)) * 4,
    "nul": HEADER + b"s1,\x00\x01\x02,x,SP\n",
    "utf-8": HEADER + b"s1,01001,S\xe3o Paulo,SP\n",
    "utf-8 cut at the end": HEADER + b"s1,01001,S\xc3",
    "ragged": HEADER + b"s1,01001\n",
    "missing key": HEADER + b",01001,x,SP\n,2,y,RJ\n",
    "empty": b"",
    "blank": b" \n\n ",
    "no newline": HEADER.rstrip(),
    # The content rules the whole-body checks gained: the stream must keep every one.
    "nul deep in the file": HEADER + b"s1,01001,x,SP\n" * 10_000 + b"s2,0\x001,x,SP\n",
    "CR-only line endings": HEADER.rstrip() + b"\rs1,01001,x,SP\rs2,02002,y,RJ\r",
    "CR inside the header": b"seller_id,seller_zip\r_code_prefix,seller_city,seller_state\ns1,1,x,SP\n",
    "header field over the csv module's limit": HEADER.rstrip() + b"x" * 200_000 + b"\ns1,1,x,SP\n",
    "unclosed quote in the header": b'"seller_id,x\ns1,1,x,SP\n',
    # Only an empty field is null: a word like NA in a required column is a value, and the
    # rewrite (a formula cell makes one) keeps every word as it was sent.
    "null words are text": HEADER + b'NA,NA,NULL,\nNULL,nan,#N/A,""\n#N/A,N/A,=1,SP\n',
    "formulas after invisible leads": HEADER
    + "s1,\u00a0=cmd,\u200b=1,\uff1dHYPERLINK(1)\ns2, -3,\u3000@x,\uff0bcmd\n".encode(),
}


def _outcome(check):
    try:
        return "accepted", check()
    except Rejected as exc:
        return exc.status, exc.reason


def _streamed(body: bytes, block: int):
    stream = FileStream(SELLERS)
    with tempfile.TemporaryFile() as spool:
        for start in range(0, len(body), block):
            spool.write(body[start : start + block])
            stream.feed(body[start : start + block])
        checked = stream.finish(spool)
        stored = checked.stored.read() if checked.neutralized else None
    return checked.rows, checked.neutralized, stored


def _whole(body: bytes):
    table, neutralized = validate_file(body, SELLERS)
    if not neutralized:
        return table.num_rows, 0, None
    rewritten = io.BytesIO()
    pacsv.write_csv(table, rewritten)
    return table.num_rows, neutralized, rewritten.getvalue()


@pytest.mark.parametrize("block", [1, 3, 7, 4096])
@pytest.mark.parametrize("case", list(BODIES))
def test_streamed_checks_agree_with_the_whole_body(case, block):
    body = BODIES[case]
    whole = _outcome(lambda: _whole(body))
    streamed = _outcome(lambda: _streamed(body, block))
    if case == "utf-8 cut at the end":  # the whole-body check names the byte, ours the end
        assert whole[0] == streamed[0] == 422 and "not valid UTF-8" in streamed[1]
    elif case == "header field over the csv module's limit":  # the stream reads no further
        assert whole[0] == streamed[0] == 422 and "header" in whole[1] and "header" in streamed[1]
        assert len(streamed[1]) < 300  # names the limit, does not quote the line
    elif case == "ragged":  # the stream's parser also names the row
        assert streamed == (422, whole[1].replace("error: ", "error: Row #2: "))
    else:
        assert streamed == whole


def test_a_bad_block_is_refused_when_it_arrives():
    stream = FileStream(SELLERS)
    first = HEADER + b"s1,01001,x,SP\n" * 10_000  # past the sniffed start
    stream.feed(first)
    where = f"byte 0xe3 at offset {len(first) + 10} .line 10002."
    with pytest.raises(Rejected, match=f"not valid UTF-8: {where}"):
        stream.feed(b"s2,01001,S\xe3o,SP\n")  # the rest of the body is never read


def test_a_body_of_many_batches_is_checked_and_rewritten_in_batches():
    rows = [b"s%07d,01001,x,SP\n" % i for i in range(3 * BATCH_BYTES // 21)]
    rows[-1] = b"s-last,01001,=1+1,SP\n"
    body = HEADER + b"".join(rows)
    assert len(body) > 2 * BATCH_BYTES
    assert _streamed(body, 1 << 20) == _whole(body)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mlsec_platform_tests.sources.properties import PROPERTY  # noqa: E402

_CSV_TEXT = st.lists(
    st.sampled_from(
        list(",\"\r\n\t =+-@\x00\\'") + ["a", "1", "NA", "\u00a0", "\u200b", "\uff1d", "é"]
    ),
    max_size=150,
).map("".join)


@PROPERTY
@given(rows=_CSV_TEXT, block=st.sampled_from([1, 5, 64, 4096]))
def test_any_csv_like_text_is_judged_the_same_streamed_or_whole(rows, block):
    body = HEADER + rows.encode()
    whole = _outcome(lambda: _whole(body))
    streamed = _outcome(lambda: _streamed(body, block))
    assert streamed[0] == whole[0]  # the same status, or both accepted
    if whole[0] == "accepted":
        assert streamed == whole  # the same rows, cells neutralized and stored bytes
