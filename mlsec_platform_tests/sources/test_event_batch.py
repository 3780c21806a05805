"""Event batches checked as they arrive: what they refuse, with which status and reason,
that a batch is encoded whole or refused whole, and that it is the same however its bytes
arrive."""

from __future__ import annotations

import json

import pytest

from mlsec_platform.catalog.sources import EVENT_DOMAINS
from mlsec_platform.sources.event_batch import EventBatch, check_events
from mlsec_platform.sources.validation import Rejected

ORDER_STATUS = EVENT_DOMAINS["order_status"]


def _event(event_id: str = "e1", **overrides) -> dict:
    return {
        "event_id": event_id,
        "event_type": "order_created",
        "order_id": "o1",
        "status": "created",
        "occurred_at": "2017-10-02T10:56:33Z",
        **overrides,
    }


def _refusal(check, *args) -> Rejected:
    with pytest.raises(Rejected) as refused:
        check(*args)
    return refused.value


def _body(events) -> bytes:
    return json.dumps(events).encode()


def _checked(body: bytes, max_payload: int = 1 << 20) -> list[tuple[str, bytes]]:
    """The messages of ``body``'s batch: (event id, payload) each."""
    batch = check_events(body, ORDER_STATUS, max_payload)
    try:
        return [(m.event_id, m.payload) for m in batch.messages()]
    finally:
        batch.close()


def _built(events: list, max_payload: int) -> list[tuple[str, bytes]]:
    """The messages of events built in code, added to a batch one by one."""
    batch = EventBatch(ORDER_STATUS, max_payload)
    try:
        for index, event in enumerate(events):
            batch.add(event, index)
        return [(m.event_id, m.payload) for m in batch.messages()]
    finally:
        batch.close()


HOSTILE_EVENTS = {
    "deeply nested JSON": (b"[" * 100_000 + b"]" * 100_000, 400, "malformed JSON"),
    "a 5,000-digit integer": (b'[{"event_id": ' + b"7" * 5000 + b"}]", 400, "malformed JSON"),
    "a lone surrogate in an event id": (b'[{"event_id": "a\\ud800"}]', 400, "malformed JSON"),
    "an event id with a leading space": (_body([_event(" e1")]), 422, "whitespace"),
    "an event id with a trailing newline": (_body([_event("e1\n")]), 422, "whitespace"),
    "an event id with a CR inside": (_body([_event("e\r1")]), 422, "control character"),
    "an event id with a NUL": (_body([_event("e\x001")]), 422, "control character"),
    "one id twice with different content": (
        _body([_event("e1"), _event("e1", status="approved")]),
        422,
        "event_id 'e1' of event 0 with other content",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_EVENTS), ids=list(HOSTILE_EVENTS))
def test_hostile_events_are_a_4xx_with_a_reason_never_a_crash(case):
    body, status, reason = HOSTILE_EVENTS[case]
    refusal = _refusal(_checked, body)
    assert refusal.status == status and reason in refusal.reason, refusal.reason


def test_a_field_given_twice_in_one_event_is_refused_not_collapsed():
    """JSON parsers keep the last of two equal keys: the first value would vanish unseen."""
    body = b'[{"event_id": "e1", "event_type": "order_created", "order_id": "o1", '
    body += b'"status": "created", "occurred_at": "2017-10-02T10:56:33Z", "status": "canceled"}]'
    refusal = _refusal(_checked, body)
    assert refusal.status == 422 and "field 'status' twice" in refusal.reason


def test_event_ids_that_differ_only_in_whitespace_are_not_collapsed():
    """The NATS client strips a header's value: "e1" and " e1" would share one message id,
    and the second event would be dropped as a duplicate of the first."""
    refusal = _refusal(_checked, _body([_event("e1"), _event(" e1")]))
    assert refusal.status == 422 and "event 1" in refusal.reason


def test_a_batch_is_encoded_whole_or_refused_whole():
    small, big = _event("small"), _event("big", order_id="o" * 2000)
    messages = _built([small, small, _event("other")], max_payload=1024)
    assert [event_id for event_id, _ in messages] == ["small", "small", "other"]
    assert messages[0][1] == json.dumps(small, separators=(",", ":")).encode()
    refusal = _refusal(_built, [small, big], 1024)
    assert refusal.status == 413
    assert "event 1" in refusal.reason and "at most 1024 bytes" in refusal.reason


def test_the_size_counts_the_message_id_header_too():
    """The message server counts headers and payload against max_payload; an id that fits
    in the payload alone can still make the server close the connection."""
    event = _event("i" * 300)
    payload_only = len(json.dumps(event, separators=(",", ":")).encode())
    refusal = _refusal(_built, [event], payload_only + 10)
    assert refusal.status == 413


def test_an_id_repeated_with_other_content_far_down_a_spooled_batch_is_refused():
    """The first message of an id is read back from the spool (a file by then) to compare."""
    events = [_event(f"e{i}", order_id="o" * 100) for i in range(20_000)]  # about 3 MiB
    same, other = [*events, events[5]], [*events, _event("e5", status="approved")]
    assert len(_checked(_body(same))) == len(same)
    refusal = _refusal(_checked, _body(other))
    assert refusal.status == 422
    assert "event 20000 repeats the event_id 'e5' of event 5" in refusal.reason


def test_messages_longer_than_a_read_of_the_spool_come_back_whole():
    """A server may take messages of several MiB: each comes back from the spool whole."""
    events = [_event("e0"), _event("e1", order_id="o" * (3 << 20)), _event("e2")]
    events.append(_event("e3", order_id="o" * (5 << 20)))
    messages = _checked(_body(events), max_payload=8 << 20)
    assert [(event_id, json.loads(payload)) for event_id, payload in messages] == [
        (event["event_id"], event) for event in events
    ]


def test_an_event_far_over_the_message_limit_is_refused_as_it_arrives():
    batch = EventBatch(ORDER_STATUS, max_payload=1024)
    batch.feed(b'[{"event_id": "e1", "order_id": "')
    with pytest.raises(Rejected) as refused:
        for _ in range(64):
            batch.feed(b"o" * 1024)
    batch.close()
    assert refused.value.status == 413
    assert refused.value.reason.startswith("event 0 is longer than 8192 bytes as sent")


BATCHES = {
    "one object": (_body(_event()), None, None),
    "an empty array": (b" [ ] ", 422, "no events in the request"),
    "an array of a number": (b"[1]", 422, "event 0: must be a JSON object"),
    "a missing value": (_body([_event()])[:-1] + b",]", 400, "a value is missing before"),
    "data after the array": (_body([_event()]) + b" []", 400, "data after the end"),
    "a byte not UTF-8 before malformed JSON": (
        b'[{"event_id": "\xff"}, x]',
        422,
        "not valid UTF-8",
    ),
}


@pytest.mark.parametrize("case", list(BATCHES), ids=list(BATCHES))
def test_what_a_batch_is_and_is_not(case):
    body, status, reason = BATCHES[case]
    if status is None:
        assert [event_id for event_id, _ in _checked(body)] == ["e1"]
        return
    refusal = _refusal(_checked, body)
    assert refusal.status == status and reason in refusal.reason, refusal.reason


# Property tests: whatever arrives, a check either passes or refuses with a typed 4xx.

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mlsec_platform_tests.sources.properties import PROPERTY, refused_typed_or_passed  # noqa: E402


@PROPERTY
@given(st.binary(max_size=400))
def test_any_bytes_as_events_pass_or_are_refused_with_a_4xx(body):
    refused_typed_or_passed(_checked, body)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
_EVENTS = st.lists(
    st.fixed_dictionaries(
        {
            "event_id": st.text(min_size=1, max_size=30),
            "event_type": st.text(min_size=1, max_size=5),
            "order_id": st.just("o1"),
            "status": st.text(min_size=1, max_size=5),
            "occurred_at": st.just("2017-10-02T10:56:33Z"),
        },
        optional={"seller_id": st.none() | st.text(max_size=5), "junk": _JSON},
    ),
    min_size=1,
    max_size=5,
)


@PROPERTY
@given(st.one_of(_JSON, _EVENTS))
def test_any_json_as_events_passes_or_is_refused_with_a_4xx(document):
    try:
        body = json.dumps(document).encode("utf-8", errors="surrogatepass")
    except ValueError:  # NaN and friends are not JSON: a caller cannot send them either
        return
    messages = refused_typed_or_passed(_checked, body)
    if messages is not None:  # accepted: each id is exactly what its header carries
        assert all(event_id == event_id.strip() for event_id, _ in messages)


def _fed(body: bytes, cuts: list[int]):
    """The messages of ``body`` arriving in pieces cut at ``cuts``, or its refusal."""
    batch = EventBatch(ORDER_STATUS, 1 << 20)
    edges = [0, *sorted(cuts), len(body)]
    try:
        for start, end in zip(edges, edges[1:], strict=False):
            batch.feed(body[start:end])
        return [(m.event_id, m.payload) for m in batch.finish().messages()]
    except Rejected as refusal:
        return refusal.status, refusal.reason
    finally:
        batch.close()


@PROPERTY
@given(st.one_of(_EVENTS, _JSON), st.data())
def test_a_batch_is_the_same_however_its_bytes_arrive(document, data):
    try:
        body = json.dumps(document, indent=data.draw(st.sampled_from([None, 1]))).encode()
    except (ValueError, UnicodeEncodeError):
        return
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=8))
    assert _fed(body, cuts) == _fed(body, [])


@PROPERTY
@given(_EVENTS, st.integers(min_value=0, max_value=400))
def test_events_as_built_in_code_encode_or_are_refused_with_a_4xx(events, max_payload):
    """Events not parsed from a body are checked and encoded the same way (an event built in
    code may hold a lone surrogate)."""
    refused_typed_or_passed(_built, events, max_payload)


def test_an_event_id_is_a_key_not_content():
    refusal = _refusal(_checked, _body([_event("i" * 1025)]))
    assert refusal.status == 422 and "longer than 1024 bytes" in refusal.reason
    assert len(_checked(_body([_event("\u00e9" * 512)]))) == 1  # 1,024 bytes: fine
