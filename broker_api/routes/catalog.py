"""``/catalog/datasets`` and ``/catalog/schema``: what the caller may read, and its columns.

A dataset is visible to a caller whose policy lets them read its key for their purpose; its
schema shows every column with its governance tags (not its data).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from broker_api import models as m
from broker_api.deps import Authorized, CurrentPrincipal, authenticate, decide_dataset, offload
from broker_api.principal import Principal
from broker_api.responses import PROBLEM_RESPONSES, dataset_out

router = APIRouter(tags=["catalog"], responses=PROBLEM_RESPONSES)


async def authorized_schema(
    request: Request,
    dataset: Annotated[str, Query(pattern=r"^[a-z]+/[a-z_][a-z0-9_]{0,62}$")],
) -> Authorized[str]:
    """The caller of a valid schema request and the policy's decision on the dataset."""
    principal = await authenticate(request)
    decision = decide_dataset(request, principal, dataset)
    return Authorized(request, principal, decision, dataset)


AuthorizedSchema = Annotated[Authorized[str], Depends(authorized_schema)]


@router.get("/catalog/datasets", response_model=list[m.DatasetOut])
async def catalog_datasets(request: Request, principal: CurrentPrincipal) -> Response:
    """The datasets this caller's policy lets them read for their purpose."""
    return await offload(request, visible_datasets, request, principal)


@router.get("/catalog/schema", response_model=m.SchemaOut)
async def catalog_schema(asked: AuthorizedSchema) -> Response:
    """Columns of one dataset with their governance tags."""
    return await asked.answer(schema)


def visible_datasets(request: Request, principal: Principal) -> list[dict[str, Any]]:
    policy = request.app.state.services.policy
    visible = [
        dataset_out(spec)
        for spec in policy.catalog.values()
        if policy.decide_dataset(principal, spec.id).allowed
    ]
    request.state.audit.update(rows=len(visible))
    return visible


def schema(asked: Authorized[str]) -> dict[str, Any]:
    spec = asked.dataset
    return {
        "dataset": dataset_out(spec),
        "columns": [
            {
                "name": c.name,
                "type": str(c.type),
                "description": c.description,
                "nullable": c.nullable,
                "pii": c.pii.value,
                "sensitivity": c.sensitivity.label,
                "mask": c.mask.value,
                "tokenized": c.tokenized,
            }
            for c in spec.columns
        ],
    }
