"""The splitter of JSON arrays: the elements it cuts are exactly what a parser of the whole
body finds, however the body's bytes arrive, and what it refuses a parser refuses too."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlsec_platform.sources.json_split import (
    MAX_DEPTH,
    UTF8_BOM,
    JsonSplitter,
    PartTooLarge,
    SplitError,
    split,
)
from mlsec_platform_tests.sources.properties import PROPERTY


def _fed(body: bytes, cuts: list[int], max_part: int | None = None):
    """The parts of ``body`` arriving in pieces cut at ``cuts``, or how it was refused."""
    splitter = JsonSplitter(max_part)
    edges = [0, *sorted(cuts), len(body)]
    parts = []
    try:
        for start, end in zip(edges, edges[1:], strict=False):
            parts += splitter.feed(body[start:end])
        return parts + splitter.finish()
    except SplitError as refusal:
        return type(refusal).__name__, str(refusal)


INVALID = object()


def _whole(body: bytes):
    """What a strict parser of the whole body finds (a byte order mark may lead)."""
    try:
        return orjson.loads(body.removeprefix(UTF8_BOM))
    except orjson.JSONDecodeError:
        return INVALID


def test_each_element_is_cut_with_where_it_starts():
    body = b'\xef\xbb\xbf [ {"a": "],}\\"{"} ,\n 2, "x\\\\", [1, [2, {}]], {"b": {"c": null}}, true ]\n'
    splitter = JsonSplitter()
    parts = splitter.feed(body) + splitter.finish()
    texts = [b'{"a": "],}\\"{"}', b"2", b'"x\\\\"', b"[1, [2, {}]]", b'{"b": {"c": null}}', b"true"]
    assert [p.text for p in parts] == texts
    assert [p.offset for p in parts] == [body.index(text) for text in texts]
    assert [p.index for p in parts] == list(range(len(texts)))
    assert splitter.is_array and [json.loads(t) for t in texts] == json.loads(body[3:])


def test_a_value_that_is_not_an_array_is_one_part():
    splitter = JsonSplitter()
    parts = splitter.feed(b' {"a": [1, ",]"]}\t') + splitter.finish()
    assert [p.text for p in parts] == [b'{"a": [1, ",]"]}'] and splitter.is_array is False


def test_an_empty_array_has_no_parts():
    assert split(b" [ \n ] ") == []


REFUSED = {
    "nothing": (b"", "no JSON value at offset 0"),
    "only whitespace": (b" \n\t", "no JSON value at offset 3"),
    "a trailing comma": (b"[1,]", "a value is missing before ']' at offset 3"),
    "a leading comma": (b"[,1]", "a value is missing before ',' at offset 1"),
    "two commas": (b"[1, ,2]", "a value is missing before ',' at offset 4"),
    "an unclosed array": (b'[{"a": 1}, 2', "the array is not closed at offset 12"),
    "an unclosed string": (b'["a]', "the array is not closed at offset 4"),
    "data after the array": (b"[1] [2]", "data after the end of the array at offset 4"),
    "a brace that closes nothing": (b"[1}]", "'}' closes nothing at offset 2"),
    "nesting too deep": (b"[" * (MAX_DEPTH + 1), f"nesting deeper than {MAX_DEPTH}"),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_what_is_not_an_array_is_refused_with_where(case):
    body, reason = REFUSED[case]
    with pytest.raises(SplitError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        split(body)
    assert _whole(body) is INVALID


def test_the_nesting_limit_is_the_parsers():
    deepest = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert _whole(deepest) is not INVALID and split(deepest) == [deepest[1:-1]]
    deeper = b"[" + deepest + b"]"
    assert _whole(deeper) is INVALID
    with pytest.raises(SplitError, match="nesting deeper"):
        split(deeper)


def test_an_element_over_the_limit_is_refused_as_it_arrives():
    body = b'[1, "' + b"x" * (1 << 20) + b'"]'
    splitter = JsonSplitter(max_part_bytes=256 * 1024)
    blocks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    fed = 0
    with pytest.raises(PartTooLarge) as refused:
        for block in blocks:
            fed += 1
            splitter.feed(block)
    assert fed < len(blocks) / 2  # refused once past the limit, not at the end
    assert (refused.value.index, refused.value.offset, refused.value.limit) == (1, 4, 256 * 1024)


def test_whitespace_between_elements_is_not_held():
    splitter = JsonSplitter(max_part_bytes=16)
    parts = splitter.feed(b"[1,")
    for _ in range(64):
        parts += splitter.feed(b" " * 65536)
    parts += splitter.feed(b"2 ]") + splitter.finish()
    assert [p.text for p in parts] == [b"1", b"2"]


# Property tests.

_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=24,
)
_LAYOUT = st.sampled_from(
    [
        {},
        {"indent": 2},
        {"separators": (",", ":")},
        {"separators": (" ,\r\n", " :\t")},
        {"ensure_ascii": False},
    ]
)


def _cuts(body_size: int):
    return st.lists(st.integers(min_value=0, max_value=body_size), max_size=12)


@PROPERTY
@given(st.lists(_VALUE, max_size=6), _LAYOUT, st.data())
def test_the_parts_of_any_array_are_its_elements_however_its_bytes_arrive(elements, layout, data):
    body = json.dumps(elements, **layout).encode("utf-8", errors="surrogatepass")
    assert [json.loads(p.text) for p in _fed(body, [])] == elements
    assert _fed(body, data.draw(_cuts(len(body)))) == _fed(body, [])


# Bytes that look like JSON: its structure and the bytes that matter to the splitter.
_PIECES = [b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b" ", b"\n", b"\x0c", b"1", b"a"]
_PIECES += [b"null", b'"x"', b'"\\""', b'{"k":[1]}', UTF8_BOM, b"\xff"]


@st.composite
def _mutated(draw) -> bytes:
    """A valid array with a few bytes put in somewhere."""
    body = json.dumps(draw(st.lists(_VALUE, max_size=4))).encode("utf-8", errors="surrogatepass")
    at = draw(st.integers(min_value=0, max_value=len(body)))
    return body[:at] + draw(st.binary(max_size=3)) + body[at:]


_JSONISH = st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join) | _mutated()


@PROPERTY
@given(_JSONISH, st.data())
def test_any_bytes_are_cut_the_same_however_they_arrive(body, data):
    assert _fed(body, data.draw(_cuts(len(body)))) == _fed(body, [])
    limited = _fed(body, [], max_part=8)
    cut = _fed(body, data.draw(_cuts(len(body))), max_part=8)
    assert isinstance(cut, tuple) == isinstance(limited, tuple)
    if not isinstance(cut, tuple):
        assert cut == limited


@PROPERTY
@given(_JSONISH)
def test_the_parts_all_parse_exactly_when_the_whole_body_does(body):
    splitter = JsonSplitter()
    whole = _whole(body)
    try:
        values = [orjson.loads(p.text) for p in splitter.feed(body) + splitter.finish()]
    except (SplitError, orjson.JSONDecodeError):
        assert whole is INVALID
        return
    assert whole == (values if splitter.is_array else values[0])
