"""Uploads of CSV files: checked, neutralized and put in the landing bucket for the connectors."""

from __future__ import annotations

import hashlib
import io

import pyarrow.csv as pacsv
from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from mlsec_platform.gateway.deps import AdmittedInput, Services
from mlsec_platform.gateway.doors import FILES
from mlsec_platform.gateway.models import FileAccepted
from mlsec_platform.gateway.services import batch_id

router = APIRouter(dependencies=[Depends(FILES)])


@router.put(
    "/v1/files/{source}",
    status_code=201,
    response_model=FileAccepted,
    summary="Upload one CSV file of a source",
)
async def upload_file(source: str, upload: AdmittedInput, services: Services) -> FileAccepted:
    table, neutralized = upload.checked
    stored = upload.body
    if neutralized:
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer)
        stored = buffer.getvalue()
    arrived, contract = upload.intake, upload.contract
    batch = batch_id()
    key = await run_in_threadpool(
        services.put_landing,
        source,
        batch,
        stored,
        {
            "sha256": hashlib.sha256(stored).hexdigest(),
            "received-sha256": arrived.sha256,
            "uploader": upload.subject,
            "received-at": arrived.received_at,
            "contract-version": str(contract.version),
            "rows": str(table.num_rows),
            "neutralized-cells": str(neutralized),
        },
    )
    await run_in_threadpool(
        services.audit.emit,
        "ingest.accepted",
        {
            "kind": "file",
            "name": source,
            "batch_id": batch,
            "rows": table.num_rows,
            "sha256": arrived.sha256,
            "subject": upload.subject,
            "landing_key": key,
        },
    )
    return FileAccepted(
        batch_id=batch,
        source=source,
        contract_version=contract.version,
        rows=table.num_rows,
        sha256=arrived.sha256,
        landing_key=key,
        neutralized_cells=neutralized,
    )
