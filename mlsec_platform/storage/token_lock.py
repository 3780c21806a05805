"""The token vault's mint lock: one minting run per token domain at a time, so two runs that
see the same new value give it one token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager


@contextmanager
def advisory_lock(connection: Callable[[], AbstractContextManager], domain: str) -> Iterator[None]:
    """The domain's mint lock: a Postgres transaction-level advisory lock, held until the
    transaction ends (also when the process dies: the server ends its session)."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"mlsec.tokens.{domain}",)
        )
        yield
