"""``/query`` and ``/explain``: a page of a curated dataset, or what that page would do.

A page is compiled to parameterized SQL over the snapshot its first page pinned, run within
the caller's in-flight slot, masked and revealed as the decision says, cut at the policy's
byte cap and charged to the project's daily row quota; the cursor resumes where it was cut.
"""

from __future__ import annotations

from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from broker_api import models as m
from broker_api.budgets import subject_column, subject_keys
from broker_api.compiler import CompiledQuery, compile_query
from broker_api.cursor import Page
from broker_api.deps import Authorized, authenticate, decide
from broker_api.lineage import AssetLineage
from broker_api.responses import (
    PROBLEM_RESPONSES,
    columns_out,
    fingerprint,
    lineage_out,
    policy_ref,
    records,
)
from broker_api.routes.caps import (
    charge_budget,
    charge_quota,
    check_rows_per_page,
    returned,
    within_byte_cap,
)
from broker_api.snapshots import RELATION

router = APIRouter(tags=["data"], responses=PROBLEM_RESPONSES)


async def authorized_query(request: Request, body: m.QueryRequest) -> Authorized[m.QueryRequest]:
    """The caller of a valid query and the policy's decision on every column it names."""
    principal = await authenticate(request)
    decision = decide(
        request,
        principal,
        body.dataset,
        body.columns,
        filter_columns=[f.column for f in body.filters],
        order_columns=[o.column for o in body.order_by],
        reveal_columns=body.reveal.columns if body.reveal else (),
        reveal_reason=body.reveal.reason if body.reveal else None,
    )
    return Authorized(request, principal, decision, body)


AuthorizedQuery = Annotated[Authorized[m.QueryRequest], Depends(authorized_query)]


@router.post("/query", response_model=m.QueryResponse)
async def query(asked: AuthorizedQuery) -> Response:
    """One page of a dataset: explicit columns, typed filters, order, limit and cursor."""
    return await asked.answer(page)


@router.post("/explain", response_model=m.Explanation)
async def explain(asked: AuthorizedQuery) -> Response:
    """What a query would do (decision, masks, row scope, SQL with placeholders): no data."""
    return await asked.answer(explanation)


def plan(
    asked: Authorized[m.QueryRequest], also: str | None = None
) -> tuple[Page, AssetLineage, CompiledQuery]:
    """Where the page starts (its cursor), the snapshot it reads and the SQL it runs (selecting
    the column ``also`` after the decision's, if it is not one of them)."""
    body, decision = asked.asked, asked.decision
    asked.audit.update(
        columns=list(decision.columns),
        filters=[
            {"column": f.column, "op": f.op.value, "value_sha256": fingerprint(f.value)}
            for f in body.filters
        ],
        order_by=[f"{o.column} {o.direction.value}" for o in body.order_by],
    )
    check_rows_per_page(asked, body.limit, "limit")
    start = Page(version=-1, offset=0)
    if body.cursor:
        start = asked.services.cursors.open(body.cursor, body, asked.principal.subject)
    lin = asked.lineage(start.version if body.cursor else body.version)
    columns = decision.columns
    if also is not None and also not in columns:
        columns = (*columns, also)
    compiled = compile_query(
        asked.dataset,
        columns,
        body.filters,
        body.order_by,
        relation=RELATION,
        row_filter=decision.row_filter,
        limit=body.limit + 1,
        offset=start.offset,
    )
    return start, lin, compiled


def page(asked: Authorized[m.QueryRequest]) -> dict[str, Any]:
    """The page: run, masked, revealed, cut at the byte cap, charged to the quota and to the
    disclosure budget (by the data subjects of its rows, requested or not)."""
    body, decision, spec, services = asked.asked, asked.decision, asked.dataset, asked.services
    budgeted = services.policy.guards.budget_for(asked.principal) is not None
    subject = subject_column(spec) if budgeted else None
    start, lin, compiled = plan(asked, subject)
    services.watch.paged(asked.principal, body, start.offset)
    with asked.slot():
        snapshot = services.snapshots.get(spec, lin.delta_version)
        result = services.engine.run(
            compiled, snapshot, timeout_seconds=decision.limits.timeout_seconds
        )
    more = result.num_rows > body.limit
    result = result.slice(0, body.limit)
    keys = subject_keys(result, subject)  # the stored keys, before any mask
    if subject is not None and subject not in decision.columns:
        result = result.drop_columns([subject])
    if decision.masks:
        result = services.masker.apply(result, decision.masks)
    if decision.revealed:
        result = reveal(asked, result)
    rows, size = within_byte_cap(records(result), decision.limits.max_bytes)
    more = more or len(rows) < result.num_rows
    charge_budget(asked, keys[: len(rows)], len(rows))
    charge_quota(asked, len(rows))
    resume = Page(lin.delta_version, start.offset + len(rows))
    next_cursor = services.cursors.issue(body, asked.principal.subject, resume) if more else None
    returned(asked, len(rows), size)
    return {
        "request_id": asked.request_id,
        "dataset": spec.id,
        "columns": columns_out(spec, decision),
        "rows": rows,
        "row_count": len(rows),
        "next_cursor": next_cursor,
        "lineage": lineage_out(lin),
        "policy": policy_ref(decision),
    }


def explanation(asked: Authorized[m.QueryRequest]) -> dict[str, Any]:
    """The decision, its masks and row scope, and the SQL with placeholders: no data."""
    decision = asked.decision
    _, lin, compiled = plan(asked)
    asked.audit.update(rows=0, bytes=0)
    return {
        "request_id": asked.request_id,
        "allowed": True,
        "reason": decision.reason,
        "columns": columns_out(asked.dataset, decision),
        "row_filter": compiled.where.split(" AND ")[0] if decision.row_filter else None,
        "sql": compiled.sql,
        "parameters": len(compiled.params),
        "limits": {k: v for k, v in vars(decision.limits).items()},
        "lineage": lineage_out(lin),
        "policy": policy_ref(decision),
        "budget": asked.services.budgets.state(
            asked.principal, asked.services.policy.guards.budget_for(asked.principal)
        ),
    }


def reveal(asked: Authorized[m.QueryRequest], table: pa.Table) -> pa.Table:
    """The decision's revealed columns in clear, audited with the caller's reason."""
    revealed, reason = asked.decision.revealed, asked.asked.reveal.reason  # type: ignore[union-attr]
    asked.audit.update(revealed=list(revealed), reveal_reason=reason)
    return asked.services.reveal(
        table,
        revealed,
        spec=asked.dataset,
        subject=asked.principal.subject,
        reason=reason,
        request_id=asked.request_id,
    )
