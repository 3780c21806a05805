"""The caps every data route applies to what it returns, from the caller's policy: rows per
page, bytes per response and the project's daily row quota (``/query`` and the feature routes
alike, so no route is a way around them)."""

from __future__ import annotations

from typing import Any

import orjson

from broker_api.budgets import subject_column
from broker_api.deps import Authorized, response_headers
from broker_api.errors import LimitReached, RequestRefused


def check_rows_per_page(asked: Authorized[Any], rows: int, what: str) -> None:
    """Refuse (400) a request for more ``rows`` than the policy's rows per page; ``what``
    names the input that asked for them."""
    most = asked.decision.limits.max_rows_per_page
    if rows > most:
        raise RequestRefused(f"{what} {rows} is above this policy's {most} rows per page")


def within_byte_cap(rows: list[dict[str, Any]], max_bytes: int) -> tuple[list[dict], int]:
    """The leading rows whose JSON fits in ``max_bytes``, and their size; the cursor resumes
    after them. A first row that alone is larger is refused (413)."""
    total = len(orjson.dumps(rows, default=str))
    if total <= max_bytes:
        return rows, total
    total = keep = 0
    for row in rows:
        size = len(orjson.dumps(row, default=str)) + 1
        if total + size > max_bytes:
            break
        total, keep = total + size, keep + 1
    if keep == 0 and rows:
        raise RequestRefused("one row is larger than this policy's byte cap", status=413)
    return rows[:keep], total


def all_within_byte_cap(rows: list[dict[str, Any]], max_bytes: int, fewer: str) -> int:
    """The JSON size of ``rows``, which an answer without a cursor returns whole or not at all:
    above ``max_bytes`` it is refused (413), asking for ``fewer`` of what made it large."""
    size = len(orjson.dumps(rows, default=str))
    if size > max_bytes:
        raise RequestRefused(
            f"the answer ({len(rows)} rows, {size} bytes) is larger than this policy's byte cap "
            f"of {max_bytes}: ask for fewer {fewer}",
            status=413,
        )
    return size


def charge_quota(asked: Authorized[Any], rows: int) -> None:
    """Count the rows returned against the project's daily quota, or 429."""
    services, project = asked.services, asked.principal.project
    if not services.quota.charge(project, rows, asked.decision.limits):
        services.metrics.limit("quota")
        raise LimitReached(
            f"project {project!r} has used its rows for today",
            retry_after=services.quota.seconds_to_reset(),
        )


def charge_budget(asked: Authorized[Any], keys: list[Any], rows: int) -> None:
    """Count the data subjects (``keys``, values of the dataset's subject column) and rows an
    answer returns against the caller's disclosure budget, or 429 (:mod:`broker_api.budgets`)."""
    services, principal = asked.services, asked.principal
    services.budgets.charge(
        principal,
        services.policy.guards.budget_for(principal),
        subject_column(asked.dataset),
        keys,
        rows,
        asked.audit,
        response_headers(asked.request),
    )


def returned(asked: Authorized[Any], rows: int, size: int) -> None:
    """Record what the answer returns: in the audit event and the metrics."""
    asked.audit.update(rows=rows, bytes=size)
    asked.services.metrics.returned(asked.dataset.id, rows, size)
