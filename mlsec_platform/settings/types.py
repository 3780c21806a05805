"""The plain types the settings name: profiles, server endpoints, server names and zones."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel


class Profile(StrEnum):
    LOCAL = "local"
    STACK = "stack"


class Endpoints(BaseModel):
    """Where the four servers answer. Never holds a secret."""

    vault_addr: str
    s3_endpoint: str
    postgres_host: str = "127.0.0.1"
    postgres_port: int
    nats_url: str
    #: The Spark Connect engine the `local` profile started (Sail), if it runs.
    spark_remote: str | None = None


#: The servers whose clients verify their TLS certificates (see ``server_ca``).
ServerName = Literal["vault", "s3", "postgres", "nats"]


class Zone(StrEnum):
    """Storage zones; each is one bucket."""

    LANDING = "landing"
    RAW = "raw"
    SILVER = "silver"
    GOLD = "gold"
    FEATURES = "features"
    COLD = "cold"
    QUARANTINE = "quarantine"
    #: The token vault (``storage/token_vault.py``): tokens, sealed values, wrapped keys.
    TOKENS = "tokens"
    #: Dagster's step logs (compute logs, ``stack/orchestrator.py``): no data, only the
    #: orchestrator identity reads and writes it.
    DAGSTER = "dagster"


def bucket_name(prefix: str, zone: Zone | str) -> str:
    """The bucket of ``zone`` under the deployment's bucket ``prefix``: ``mlsec-raw``."""
    return f"{prefix}{Zone(zone).value}"
