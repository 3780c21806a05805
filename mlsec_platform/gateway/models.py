"""The gateway's answers on the wire, and the version of its API."""

from __future__ import annotations

from pydantic import BaseModel

VERSION = "1.0.0"


class FileAccepted(BaseModel):
    batch_id: str
    source: str
    contract_version: int
    rows: int
    sha256: str
    landing_key: str
    neutralized_cells: int


class EventsAccepted(BaseModel):
    domain: str
    subject: str
    accepted: int
    duplicates: int


class Refusal(BaseModel):
    status: int
    reason: str
    quarantine_id: str
