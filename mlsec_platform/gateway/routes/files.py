"""Uploads of CSV files: checked, neutralized and put in the landing bucket for the connectors."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from mlsec_platform.gateway.deps import AdmittedInput, Services
from mlsec_platform.gateway.doors import FILES
from mlsec_platform.gateway.models import FileAccepted
from mlsec_platform.gateway.services import batch_id
from mlsec_platform.sources.file_stream import CheckedFile

router = APIRouter(dependencies=[Depends(FILES)])


@router.put(
    "/v1/files/{source}",
    status_code=201,
    response_model=FileAccepted,
    summary="Upload one CSV file of a source",
)
async def upload_file(source: str, upload: AdmittedInput, services: Services) -> FileAccepted:
    checked: CheckedFile = upload.checked
    arrived, contract = upload.intake, upload.contract
    batch = batch_id()
    try:
        stored_sha256 = arrived.sha256
        if checked.neutralized:  # a rewritten copy is stored: its own digest
            stored_sha256 = await run_in_threadpool(_sha256_of, checked.stored)
        key = await run_in_threadpool(
            services.put_landing,
            source,
            batch,
            checked.stored,
            {
                "sha256": stored_sha256,
                "received-sha256": arrived.sha256,
                "uploader": upload.subject,
                "received-at": arrived.received_at,
                "contract-version": str(contract.version),
                "rows": str(checked.rows),
                "neutralized-cells": str(checked.neutralized),
            },
        )
    finally:
        upload.sink.close()
    await run_in_threadpool(
        services.audit.emit,
        "ingest.accepted",
        {
            "kind": "file",
            "name": source,
            "batch_id": batch,
            "rows": checked.rows,
            "sha256": arrived.sha256,
            "subject": upload.subject,
            "landing_key": key,
        },
    )
    return FileAccepted(
        batch_id=batch,
        source=source,
        contract_version=contract.version,
        rows=checked.rows,
        sha256=arrived.sha256,
        landing_key=key,
        neutralized_cells=checked.neutralized,
    )


def _sha256_of(stored) -> str:
    stored.seek(0)
    return hashlib.file_digest(stored, "sha256").hexdigest()
