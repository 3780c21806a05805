"""Events of a domain: checked and published once per event id on its JetStream subject."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from mlsec_platform.gateway.deps import AdmittedInput, JetStream, Services
from mlsec_platform.gateway.doors import EVENTS
from mlsec_platform.gateway.models import EventsAccepted

router = APIRouter(dependencies=[Depends(EVENTS)])


@router.post(
    "/v1/events/{domain}",
    status_code=202,
    response_model=EventsAccepted,
    summary="Publish JSON events of a domain (an array or one object)",
)
async def publish_events(
    domain: str, admitted: AdmittedInput, services: Services, js: JetStream
) -> EventsAccepted:
    stream_subject, events = admitted.contract.subject, admitted.checked
    # The stream drops an event whose Nats-Msg-Id it has seen: a retried request is harmless.
    futures = [
        await js.publish_async(
            stream_subject,
            json.dumps(event, separators=(",", ":")).encode(),
            headers={"Nats-Msg-Id": event["event_id"]},
        )
        for event in events
    ]
    acks = await asyncio.gather(*futures)
    duplicates = sum(1 for ack in acks if ack.duplicate)
    await run_in_threadpool(
        services.audit.emit,
        "ingest.accepted",
        {
            "kind": "events",
            "name": domain,
            "events": len(events),
            "duplicates": duplicates,
            "sha256": admitted.intake.sha256,
            "subject": admitted.subject,
        },
    )
    return EventsAccepted(
        domain=domain,
        subject=stream_subject,
        accepted=len(events) - duplicates,
        duplicates=duplicates,
    )
