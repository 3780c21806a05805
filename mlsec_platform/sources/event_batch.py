"""An event batch checked as it arrives and kept as the messages it is published as.

A batch is a JSON array of events (or one event). Its bytes are cut into the text of each
event as they arrive (``json_split``); each event is then parsed, checked against its domain's
contract, encoded and sized against the message server's limit on its own, and only its
encoded message is kept, in a spool file (in memory while small). So the gateway never holds
the parsed batch: its memory grows with one block and one event, not with the batch. A batch
is still accepted or refused whole: it is published, from the spool, only once all of it
passed.

Parsing is strict. orjson refuses nesting deeper than 1,024 (the splitter does too), numbers
it cannot hold and lone surrogates, each as malformed JSON (the standard parser raised
RecursionError or ValueError on the first two and let the third through). Both keep only the
last of two equal keys, so the standard parser's second pass finds those: what vanished would
be input silently dropped.
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import orjson

from mlsec_platform.catalog.sources import EventContract
from mlsec_platform.sources.json_split import JsonSplitter, Part, PartTooLarge, SplitError
from mlsec_platform.sources.validation import Rejected, Utf8Stream, quoted, validate_event

#: An event's text may be this many times the message server's limit (JSON's escapes and
#: whitespace shrink when it is encoded again); a longer one is refused as it arrives.
MAX_TEXT_FACTOR = 8
#: Encoded messages kept in memory before the spool moves to a temporary file.
SPOOL_MEMORY_BYTES = 1 << 20
#: How much of the spool is read back at a time.
READ_BYTES = 1 << 20
#: A spooled message: the sizes of its id and payload, then both.
_SIZES = struct.Struct(">II")
#: An event id's first message: its event's index in the low bits, its spool position above.
_INDEX_BITS = 32
_INDEX_MASK = (1 << _INDEX_BITS) - 1


class EventMessage(NamedTuple):  # a tuple: made twice per event, it must cost little
    """One event as published: its id (the message id) and its JSON payload."""

    event_id: str
    payload: bytes

    @property
    def headers(self) -> dict[str, str]:
        return {"Nats-Msg-Id": self.event_id}

    @property
    def size(self) -> int:
        """What the message server counts against its max_payload: headers and payload."""
        return len(_HEADER_FRAME) + len(self.event_id.encode()) + len(self.payload)


#: ``NATS/1.0\r\nNats-Msg-Id: <id>\r\n\r\n`` around the id, as the client frames it.
_HEADER_FRAME = b"NATS/1.0\r\nNats-Msg-Id: \r\n\r\n"


def _refuse_repeated_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise Rejected(
            422, f"a JSON object has the field {quoted(repeated)} twice: only one value can count"
        )
    return fields


#: One decoder for every event (``json.loads`` with a hook builds a new one per call).
_PAIRS = json.JSONDecoder(object_pairs_hook=_refuse_repeated_fields)


def parse_event(part: Part) -> Any:
    """The JSON of one event's text (valid UTF-8 already), parsed strictly."""
    try:
        event = orjson.loads(part.text)
    except orjson.JSONDecodeError as exc:
        raise Rejected(
            400,
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno} of event "
            f"{part.index} (which starts at offset {part.offset})",
        ) from None
    try:  # the text is one value, stripped (orjson took it): no whitespace scan around it
        _PAIRS.raw_decode(part.text.decode())
    except (RecursionError, ValueError) as exc:  # orjson nests deeper than Python recurses
        raise Rejected(400, f"malformed JSON: {type(exc).__name__}") from None
    return event


def encode_event(event: dict[str, Any], index: int, max_payload: int) -> EventMessage:
    """A checked event as its message, refused if the message server could not take it
    (``max_payload``, from its connection: a message over it closes the connection)."""
    try:
        payload = orjson.dumps(event)
    except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate in an event built in code
        raise Rejected(422, f"event {index}: cannot be encoded as JSON: {exc}") from None
    message = EventMessage(event["event_id"], payload)
    if message.size > max_payload:
        raise Rejected(
            413,
            f"event {index} is {message.size} bytes as a message (with its id header); "
            f"the message server takes at most {max_payload} bytes",
        )
    return message


class EventBatch:
    """The events of one request of ``contract``, fed block by block, kept as messages."""

    def __init__(self, contract: EventContract, max_payload: int) -> None:
        self.contract = contract
        self.max_payload = max_payload
        self.count = 0  # events taken so far
        self._utf8 = Utf8Stream()
        self._splitter = JsonSplitter(max_part_bytes=MAX_TEXT_FACTOR * max_payload)
        # Closed by close(); a file is unlinked at once (nothing is left if the process dies).
        self._spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_MEMORY_BYTES, prefix="mlsec-events-"
        )
        self._spooled = 0  # bytes in the spool
        #: Each event id: the index of its first event and where its message is spooled.
        self._first: dict[str, int] = {}

    def feed(self, block: bytes) -> None:
        """Take the next block of the body; raises :class:`Rejected`."""
        self._utf8.feed(block)
        self._take(lambda: self._splitter.feed(block))

    def finish(self) -> EventBatch:
        """The body is complete: its last event; raises :class:`Rejected`."""
        self._utf8.finish()
        self._take(self._splitter.finish)
        if not self.count:
            raise Rejected(422, "no events in the request")
        return self

    def _take(self, split: Callable[[], list[Part]]) -> None:
        """The events ``split`` completes, each added; the splitter's refusals as 4xx."""
        try:
            parts = split()
        except PartTooLarge as exc:
            raise Rejected(
                413,
                f"event {exc.index} is longer than {exc.limit} bytes as sent; the message "
                f"server takes at most {self.max_payload} bytes a message",
            ) from None
        except SplitError as exc:
            raise Rejected(400, f"malformed JSON: {exc}") from None
        for part in parts:
            self.add(parse_event(part), part.index)

    def add(self, event: Any, index: int) -> None:
        """One event: checked, encoded, sized and spooled, or the whole batch refused."""
        validate_event(event, self.contract, index)
        message = encode_event(event, index, self.max_payload)
        # The same event sent twice is published twice (the stream stores it once); other
        # content under the same id would be dropped unseen.
        first = self._first.setdefault(message.event_id, index | self._spooled << _INDEX_BITS)
        first_index = first & _INDEX_MASK
        if first_index != index and self._payload_at(first >> _INDEX_BITS) != message.payload:
            raise Rejected(
                422,
                f"event {index} repeats the event_id {quoted(message.event_id)} of event "
                f"{first_index} with other content",
            )
        event_id = message.event_id.encode()
        record = _SIZES.pack(len(event_id), len(message.payload)) + event_id + message.payload
        self._spool.write(record)
        self._spooled += len(record)
        self.count += 1

    def _payload_at(self, position: int) -> bytes:
        self._spool.seek(position)
        id_size, payload_size = _SIZES.unpack(self._spool.read(_SIZES.size))
        self._spool.seek(id_size, 1)
        payload = self._spool.read(payload_size)
        self._spool.seek(0, 2)
        return payload

    def messages(self) -> Iterator[EventMessage]:
        """The batch's messages, in order, read back from the spool a block at a time."""
        self._spool.seek(0)
        data, at = b"", 0
        while True:
            missing = _SIZES.size
            if len(data) - at >= _SIZES.size:
                id_size, payload_size = _SIZES.unpack_from(data, at)
                id_end = at + _SIZES.size + id_size
                end = id_end + payload_size
                if end <= len(data):
                    yield EventMessage(data[at + _SIZES.size : id_end].decode(), data[id_end:end])
                    at = end
                    continue
                missing = end - len(data)  # a message longer than what is left: all of it
            more = self._spool.read(max(READ_BYTES, missing))
            if not more:
                return
            data, at = data[at:] + more, 0

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        self._spool.close()


def check_events(body: bytes, contract: EventContract, max_payload: int) -> EventBatch:
    """A whole body's events, checked and encoded (the batch is closed by the caller)."""
    batch = EventBatch(contract, max_payload)
    try:
        batch.feed(body)
        return batch.finish()
    except BaseException:
        batch.close()
        raise
