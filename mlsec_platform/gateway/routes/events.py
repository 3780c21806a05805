"""Events of a domain: checked and published once per event id on its JetStream subject."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from mlsec_platform.gateway.deps import AdmittedInput, Publisher, Services
from mlsec_platform.gateway.doors import EVENTS
from mlsec_platform.gateway.models import EventsAccepted
from mlsec_platform.sources.event_batch import EventBatch

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
    batch: EventBatch = admitted.checked
    # Every event was checked, encoded and sized against the server's limit as the body
    # arrived: a batch is accepted or refused whole (Rejected is answered and kept).
    try:
        # The stream drops an event whose Nats-Msg-Id it has seen: a retried request is harmless.
        published = await publisher.publish(admitted.contract.subject, batch.messages())
    finally:
        admitted.sink.close()
    await run_in_threadpool(
        services.audit.emit,
        "ingest.accepted",
        {
            "kind": "events",
            "name": domain,
            "events": published.count,
            "duplicates": published.duplicates,
            "sha256": admitted.intake.sha256,
            "subject": admitted.subject,
        },
    )
    return EventsAccepted(
        domain=domain,
        subject=admitted.contract.subject,
        accepted=published.count - published.duplicates,
        duplicates=published.duplicates,
    )
