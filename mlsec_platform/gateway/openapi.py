"""What the gateway's OpenAPI document says beyond its routes' signatures: the body each door
takes (its media type and shape) and the source and domain names it knows.

The routes read their bodies raw (a file is checked as bytes against its contract), so FastAPI
cannot see them; the names are listed as an ``enum`` for clients and Swagger UI, but an
unknown one is still answered by the door (404, kept and audited), never by the framework.
"""

from __future__ import annotations

from typing import Any

from mlsec_platform.gateway.doors import EVENTS, FILES, Door

#: An event object: its fields are the domain's contract (unknown fields are refused).
EVENT = {"type": "object", "required": ["event_id"], "additionalProperties": True}

#: door kind -> (media type, body schema, what the body is).
BODIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "file": (
        "text/csv",
        {"type": "string", "format": "binary"},
        "One CSV file of the source, UTF-8, with a header row naming the contract's columns.",
    ),
    "events": (
        "application/json",
        {"oneOf": [{"type": "array", "minItems": 1, "items": EVENT}, EVENT]},
        "A JSON array of events of the domain, or one event object; each has exactly the "
        "contract's fields and a unique `event_id`.",
    ),
}


def describe_doors(schema: dict[str, Any], doors: tuple[Door, ...] = (FILES, EVENTS)) -> None:
    """Adds to the gateway's document each door's request body and name list, on the
    operations whose path names the door's parameter (``/v1/files/{source}``, ...)."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                door = next((d for d in doors if d.param == parameter["name"]), None)
                if door is None or parameter["in"] != "path":
                    continue
                parameter["schema"]["enum"] = sorted(door.contracts)
                parameter["description"] = f"The {door.noun}: one the gateway has a contract for."
                media_type, body, text = BODIES[door.kind]
                operation["requestBody"] = {
                    "required": True,
                    "description": text,
                    "content": {media_type: {"schema": body}},
                }
