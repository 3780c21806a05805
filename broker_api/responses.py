"""What the broker answers with: JSON bodies built from Arrow tables, decisions and lineage.

Bodies are serialized with orjson into a finished :class:`Response`, so the thread that built
the answer also seals it (its audit event starts committing there, see
:mod:`broker_api.middleware`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from fastapi.responses import Response

from broker_api import models as m
from broker_api.lineage import AssetLineage
from broker_api.masking import masked_type
from broker_api.policy.decision import Decision
from mlsec_platform.catalog.governance import DatasetSpec

#: What any route may answer instead: a Problem, with these statuses (for the OpenAPI document).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": m.Problem} for s in (400, 401, 403, 404, 410, 413, 429, 503, 504)
}


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body, default=str),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def fingerprint(value: Any) -> str:
    """Filter values are recorded as fingerprints: they may be personal data."""
    return hashlib.sha256(orjson.dumps(value, default=str)).hexdigest()[:16]


def lineage_out(lin: AssetLineage) -> dict[str, Any]:
    return {
        "asset_key": lin.asset_key,
        "delta_version": lin.delta_version,
        "run_id": lin.run_id,
        "materialized_at": lin.materialized_at,
        "code_version": lin.code_version,
        "upstream": [{"asset_key": k, "delta_version": v} for k, v in lin.upstream],
    }


def policy_ref(decision: Decision) -> dict[str, Any]:
    return {
        "decision_id": decision.id,
        "policy_ids": list(decision.policy_ids),
        "policy_version": decision.policy_version,
    }


def json_values(column: pa.ChunkedArray) -> list[Any]:
    """A column's values, JSON-ready: decimals as exact strings, dates as ISO strings, UTC
    times as RFC 3339 (``2026-01-31T12:00:00.000000Z``). Arrow casts them to text (building a
    Python datetime per value costs more than the rest of a page; Arrow's strftime, 5x more
    than a cast)."""
    t = column.type
    if pa.types.is_decimal(t) or pa.types.is_date(t):
        return pc.cast(column, pa.string()).to_pylist()
    if pa.types.is_timestamp(t) and t.tz in ("UTC", "+00:00"):
        # The same instant without its zone casts to "YYYY-MM-DD HH:MM:SS[.fraction]".
        text = pc.cast(column.cast(pa.timestamp(t.unit)), pa.string()).to_pylist()
        return [None if v is None else f"{v[:10]}T{v[11:]}Z" for v in text]
    return column.to_pylist()


def records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts."""
    names = table.column_names
    return [
        dict(zip(names, row, strict=True))
        for row in zip(*(json_values(c) for c in table.columns), strict=True)
    ]


def columns_out(spec: DatasetSpec, decision: Decision) -> list[dict[str, Any]]:
    """The returned columns with their types as the reader gets them (masked or not)."""
    out = []
    for name in decision.columns:
        mask = decision.masks.get(name)
        type_ = spec.column(name).type
        shown = masked_type(type_, mask) if mask is not None else type_
        out.append(
            {
                "name": name,
                "type": str(shown),
                "mask": mask.value if mask else None,
                "revealed": name in decision.revealed,
            }
        )
    return out


def dataset_out(spec: DatasetSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "zone": spec.zone.value,
        "domain": spec.domain,
        "description": spec.description,
        "key": list(spec.key),
        "purposes": sorted(p.value for p in spec.purposes),
        "sensitivity": spec.sensitivity.label,
        "row_security_key": spec.row_security_key,
        "version": spec.version,
    }
