"""``GET /v1/jobs/{id}/events``: a job's events as server-sent events, resumable."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import HubDep, MetricsDep, SettingsDep, StoreDep, TenantDep
from api.events import EventHub
from api.routes.jobs import JobId
from queueing.jobstore import JobStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

STREAM_ID = r"^\d{1,19}-\d{1,19}$"
BATCH = 500


async def job_events(
    store: JobStore,
    hub: EventHub,
    job_id: str,
    *,
    after: str,
    finished: bool,
    ping_s: float,
    clients: Gauge,
) -> AsyncIterator[ServerSentEvent]:
    """Events after ``after`` until the terminal status event.

    ``finished`` says the job was already terminal when the client came, so an empty read
    means the client has seen everything.
    """
    clients.inc()
    try:
        with hub.waiter(job_id) as woken:
            while True:
                woken.clear()
                events = await store.events(job_id, after=after, count=BATCH)
                for event in events:
                    yield ServerSentEvent(data=event.data, event=event.type, id=event.id)
                    after = event.id
                    if event.terminal:
                        return
                if len(events) == BATCH:
                    continue
                if finished and not events:
                    return
                # A timeout re-reads once more: a safety net should a notification be lost.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), ping_s)
    finally:
        clients.dec()


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "The job's events", "content": {"text/event-stream": {}}},
        401: {"description": "Missing or unknown API key"},
        404: {"description": "No such job"},
    },
)
async def stream_job_events(
    job_id: JobId,
    tenant: TenantDep,
    store: StoreDep,
    hub: HubDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    last_event_header: Annotated[
        str | None, Header(alias="Last-Event-ID", pattern=STREAM_ID)
    ] = None,
    last_event_id: Annotated[
        str | None, Query(pattern=STREAM_ID, description="Resume after this event id")
    ] = None,
) -> EventSourceResponse:
    """Status, token, result and error events; ends after the terminal status event."""
    record = await store.get(job_id, tenant)
    stream = job_events(
        store,
        hub,
        job_id,
        after=last_event_header or last_event_id or "0-0",
        finished=record.status.terminal,
        ping_s=settings.api.sse_ping_s,
        clients=metrics.sse_clients,
    )
    return EventSourceResponse(stream, ping=settings.api.sse_ping_s)
