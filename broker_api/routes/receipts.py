"""``/receipts/jwks``: the public keys that verify lineage receipts (see
:mod:`broker_api.receipts`): the versions of the OpenBao transit key that certifies each
broker's receipt key. To any authenticated caller: the SDK fetches it to verify receipts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from broker_api.deps import CurrentPrincipal, offload
from broker_api.principal import Principal
from broker_api.responses import PROBLEM_RESPONSES

router = APIRouter(tags=["receipts"], responses=PROBLEM_RESPONSES)


@router.get("/receipts/jwks")
async def receipt_jwks(request: Request, principal: CurrentPrincipal) -> Response:
    """The JWKS that verifies the certificates in lineage receipts."""
    return await offload(request, keys, request, principal)


def keys(request: Request, principal: Principal) -> dict[str, Any]:
    request.state.audit.update(rows=0)
    return request.app.state.services.receipts.jwks()
