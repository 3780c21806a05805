"""Event batches: parsed, checked against their domain's contract and encoded as messages.

A batch is accepted or refused whole: every event is checked and encoded, and sized against
the message server's limit, before any of it is published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from mlsec_platform.catalog.sources import EventContract
from mlsec_platform.sources.validation import Rejected, _shown, decode_utf8, validate_event


def parse_events(body: bytes, contract: EventContract) -> list[dict[str, Any]]:
    """A JSON array (or one object) of events, each exactly matching the domain's contract.

    orjson is strict where the standard parser is not: it refuses nesting deeper than 1,024,
    numbers it cannot hold and lone surrogates, each as malformed JSON (the standard parser
    raised RecursionError or ValueError on the first two and let the third through). Both
    keep only the last of two equal keys, so a second pass finds those: what vanished would
    be input silently dropped."""
    text = decode_utf8(body)
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Rejected(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    try:
        json.loads(text, object_pairs_hook=_refuse_repeated_fields)
    except (RecursionError, ValueError) as exc:  # orjson nests deeper than Python recurses
        raise Rejected(400, f"malformed JSON: {type(exc).__name__}") from None
    events = decoded if isinstance(decoded, list) else [decoded]
    if not events:
        raise Rejected(422, "no events in the request")
    for index, event in enumerate(events):
        validate_event(event, contract, index)
    return events


def _refuse_repeated_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise Rejected(
            422, f"a JSON object has the field {_shown(repeated)} twice: only one value can count"
        )
    return fields


@dataclass(frozen=True)
class EventMessage:
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


def encode_events(events: list[dict[str, Any]], max_payload: int) -> list[EventMessage]:
    """Every event of a checked batch encoded, or the whole batch refused: nothing is published
    before all fit. ``max_payload`` is the message server's limit (from its connection): a
    message over it makes the server close the publisher's connection."""
    messages: list[EventMessage] = []
    first_of: dict[str, tuple[int, bytes]] = {}
    for index, event in enumerate(events):
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
        seen = first_of.setdefault(message.event_id, (index, payload))
        if seen[1] != payload:
            raise Rejected(
                422,
                f"event {index} repeats the event_id {_shown(message.event_id)} of event "
                f"{seen[0]} with other content",
            )
        messages.append(message)
    return messages
