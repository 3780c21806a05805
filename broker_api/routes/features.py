"""``/feature/vector`` and ``/feature/historical``: feature groups by entity.

A feature group is a catalog feature dataset that names its group, its entity column and its
online table (:class:`~mlsec_platform.catalog.governance.FeatureGroup`). Vectors are read from
the online store (the latest row per entity, in the warehouse, under the caller's row scope
there too); historical values are joined point in time on the offline snapshot. Both answer
under the same caps as ``/query`` (:mod:`broker_api.routes.caps`): no more entities than the
policy's rows per page, the whole answer within its byte cap (there is no cursor to resume
from, so a larger one is refused), the rows charged to the project's daily quota.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from broker_api import models as m
from broker_api.compiler import quote
from broker_api.deps import Authorized, authenticate, decide
from broker_api.errors import RequestRefused
from broker_api.policy.decision import Decision
from broker_api.responses import PROBLEM_RESPONSES, columns_out, lineage_out, policy_ref, records
from broker_api.routes.caps import (
    all_within_byte_cap,
    charge_budget,
    charge_quota,
    check_rows_per_page,
    returned,
)
from broker_api.snapshots import RELATION
from mlsec_platform.catalog.datasets import FEATURE_GROUPS
from mlsec_platform.catalog.governance import DatasetSpec, FeatureGroup

#: The offline column a point-in-time join matches against (when the values were true).
EVENT_TIME = "event_timestamp"

router = APIRouter(tags=["features"], responses=PROBLEM_RESPONSES)


def feature_dataset(group: str) -> tuple[DatasetSpec, FeatureGroup]:
    """The catalog dataset of a feature group, and the group, or 404."""
    spec = FEATURE_GROUPS.get(group)
    if spec is None or spec.feature_group is None:
        raise RequestRefused(f"unknown feature group {group!r}", status=404)
    return spec, spec.feature_group


@dataclass(frozen=True, slots=True)
class VectorAsk:
    group: str
    entities: list[str]
    features: list[str] | None


async def authorized_vector(
    request: Request, group: str, entity: list[str], feature: list[str] | None
) -> Authorized[VectorAsk]:
    """The caller of a valid lookup and the policy's decision on the features it asks for
    (all of the group's by default), looked up by the entity."""
    principal = await authenticate(request)
    spec, fg = feature_dataset(group)
    wanted = feature or [c for c in spec.column_names if c != fg.entity]
    columns = [fg.entity, *[c for c in wanted if c != fg.entity]]
    decision = decide(request, principal, spec.id, columns, filter_columns=[fg.entity])
    return Authorized(request, principal, decision, VectorAsk(group, entity, feature))


async def authorized_historical(
    request: Request, body: m.HistoricalRequest
) -> Authorized[m.HistoricalRequest]:
    """The caller of a valid point-in-time request and the policy's decision on its features,
    joined by entity and time."""
    principal = await authenticate(request)
    spec, fg = feature_dataset(body.group)
    keys = (fg.entity, EVENT_TIME)
    columns = [*keys, *[c for c in body.features if c not in keys]]
    decision = decide(request, principal, spec.id, columns, filter_columns=list(keys))
    return Authorized(request, principal, decision, body)


AuthorizedHistorical = Annotated[Authorized[m.HistoricalRequest], Depends(authorized_historical)]


@router.get("/feature/vector", response_model=m.FeatureVectorResponse)
async def feature_vector(
    request: Request,
    group: Annotated[str, Query(pattern=r"^[a-z_][a-z0-9_]{0,62}$")],
    entity: Annotated[list[m.Text], Query(min_length=1, max_length=100)],
    feature: Annotated[list[m.ColumnName] | None, Query(max_length=64)] = None,
) -> Response:
    """Online feature values for entities (latest per entity), masked for the reader."""
    # Authorized inline, not as a dependency: the online store's lookups are the broker's
    # hottest path, and FastAPI's dependency resolution cost them 30-50 us a request.
    asked = await authorized_vector(request, group, entity, feature)
    return await asked.answer(vectors)


@router.post("/feature/historical", response_model=m.HistoricalResponse)
async def feature_historical(asked: AuthorizedHistorical) -> Response:
    """Point-in-time correct values: per entity row, the latest features at or before its
    ``event_timestamp`` (never a value computed after it)."""
    return await asked.answer(point_in_time)


def vectors(asked: Authorized[VectorAsk]) -> dict[str, Any]:
    """The latest row of each entity from the online store, under the caller's row scope."""
    decision, spec, services = asked.decision, asked.dataset, asked.services
    fg, entities, group = spec.feature_group, asked.asked.entities, asked.asked.group
    asked.audit.update(columns=list(decision.columns), entities=len(entities))
    check_rows_per_page(asked, len(entities), "entities")
    services.watch.looked_up(asked.principal, group, entities)
    lin = asked.lineage(None)
    scope = "*" if decision.row_filter is None else ",".join(decision.row_filter.values)
    select = ", ".join(quote(spec, c) for c in decision.columns)
    with asked.slot():
        rows = services.online.fetch(
            f"SELECT {select}, materialized_at AS _materialized_at "  # noqa: S608 - catalog names only
            f"FROM {fg.online_table} WHERE {quote(spec, fg.entity)} = ANY(%s)",
            (list(entities),),
            scope,
        )
    materialized = max((r[-1] for r in rows), default=None)
    found = [dict(zip(decision.columns, r[:-1], strict=True)) for r in rows]
    present = {r[fg.entity] for r in found}  # the stored keys, before any mask
    if decision.masks:  # masks are Arrow kernels: only then build a table
        schema = pa.schema(
            [spec.arrow_schema().field(c).with_nullable(True) for c in decision.columns]
        )
        table = pa.Table.from_pylist(found, schema=schema)
        found = records(services.masker.apply(table, decision.masks))
    size = all_within_byte_cap(found, decision.limits.max_bytes, "entities")
    charge_budget(asked, list(present), len(found))
    charge_quota(asked, len(found))
    returned(asked, len(found), size)
    group_version = (
        found[0].get("feature_group_version")
        if found and "feature_group_version" in found[0]
        else f"{group}:v{spec.version}"
    )
    age = (datetime.now(UTC) - materialized).total_seconds() if materialized else None
    return {
        "request_id": asked.request_id,
        "group": group,
        "group_version": group_version,
        "columns": columns_out(spec, decision),
        "vectors": found,
        "missing": [e for e in entities if e not in present],
        "freshness": {"materialized_at": materialized, "age_seconds": age},
        "lineage": lineage_out(lin),
        "policy": policy_ref(decision),
    }


def point_in_time(asked: Authorized[m.HistoricalRequest]) -> dict[str, Any]:
    """Per entity row, the latest features at or before its time, from the offline snapshot."""
    body, decision, spec, services = asked.asked, asked.decision, asked.dataset, asked.services
    asked.audit.update(columns=list(decision.columns), entities=len(body.entities))
    check_rows_per_page(asked, len(body.entities), "entities")  # one row per entity row
    lin = asked.lineage(body.version)
    entities = pa.table(
        {
            "_row": pa.array(range(len(body.entities)), pa.int64()),
            "_entity": pa.array([e.customer_token for e in body.entities], pa.string()),
            "_as_of": pa.array(
                [e.event_timestamp.astimezone(UTC) for e in body.entities],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    sql, params = point_in_time_sql(spec, decision)
    with asked.slot():
        snapshot = services.snapshots.get(spec, lin.delta_version)
        result = services.engine.run_with(
            sql,
            params,
            {RELATION: snapshot, "entities": entities},
            timeout_seconds=decision.limits.timeout_seconds,
        )
    # Rows matched by no feature row disclose only the key the caller sent: they cost nothing.
    matched = result.filter(result.column(EVENT_TIME).is_valid())
    masks = decision.masks.of(result.column_names)
    if masks:
        result = services.masker.apply(result, masks)
    rows = records(result)
    size = all_within_byte_cap(rows, decision.limits.max_bytes, "entities")
    charge_budget(asked, matched.column(0).to_pylist(), matched.num_rows)
    charge_quota(asked, len(rows))
    returned(asked, len(rows), size)
    columns = columns_out(spec, decision)
    columns.insert(
        1,
        {"name": "requested_at", "type": "timestamp[us, tz=UTC]", "mask": None, "revealed": False},
    )
    return {
        "request_id": asked.request_id,
        "group": body.group,
        "columns": columns,
        "rows": rows,
        "row_count": len(rows),
        "lineage": lineage_out(lin),
        "policy": policy_ref(decision),
    }


def point_in_time_sql(spec: DatasetSpec, decision: Decision) -> tuple[str, list[Any]]:
    """An ASOF join of the ``entities`` rows (entity, as-of time) with the snapshot's rows in
    the caller's row scope; catalog names only, values bound."""
    entity = spec.feature_group.entity  # type: ignore[union-attr]  # a feature group's dataset
    features = [c for c in decision.columns if c not in (entity, EVENT_TIME)]
    scoped, params = "TRUE", []
    if decision.row_filter is not None:
        marks = ", ".join("?" * len(decision.row_filter.values)) or "NULL"
        scoped = f"{quote(spec, decision.row_filter.column)} IN ({marks})"
        params.extend(decision.row_filter.values)
    picked = "".join(f", f.{quote(spec, c)}" for c in features)
    key = quote(spec, entity)
    sql = (
        f"SELECT e._entity AS {key}, e._as_of AS requested_at, "
        f"f.{EVENT_TIME} AS {EVENT_TIME}{picked} "
        f"FROM entities e ASOF LEFT JOIN (SELECT * FROM {RELATION} WHERE {scoped}) f "  # noqa: S608 - catalog names only
        f"ON e._entity = f.{key} AND e._as_of >= f.{EVENT_TIME} ORDER BY e._row"
    )
    return sql, params
