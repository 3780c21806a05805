"""Events of a domain: checked and published once per event id on its JetStream subject."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from mlsec_platform.gateway.deps import AdmittedInput, Publisher, Services
from mlsec_platform.gateway.doors import EVENTS
from mlsec_platform.gateway.models import EventsAccepted
from mlsec_platform.sources.event_batch import encode_events

router = APIRouter(dependencies=[Depends(EVENTS)])


@router.post(
    "/v1/events/{domain}",
    status_code=202,
    response_model=EventsAccepted,
    summary="Publish JSON events of a domain (an array or one object)",
)
async def publish_events(
    domain: str, admitted: AdmittedInput, services: Services, publisher: Publisher
) -> EventsAccepted:
    stream_subject, events = admitted.contract.subject, admitted.checked
    # The whole batch is encoded and sized against the server's limit before any event is
    # published: a batch is accepted or refused whole (Rejected is answered and kept).
    messages = encode_events(events, await publisher.max_payload())
    # The stream drops an event whose Nats-Msg-Id it has seen: a retried request is harmless.
    acks = await publisher.publish(stream_subject, messages)
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
