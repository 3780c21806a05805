"""Liveness of the gateway."""

from __future__ import annotations

from fastapi import APIRouter

from mlsec_platform.gateway.models import VERSION

router = APIRouter()


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": VERSION}
