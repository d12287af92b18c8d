"""Following one job for the HTTP client that is waiting on it, and cancelling it if it leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

import anyio
from fastapi import Request
from starlette.types import Message

from api.events import EventHub
from queueing.errors import InferqError
from queueing.events import JobEvent
from queueing.jobstore import JobStore
from queueing.schemas import JobRecord

log = logging.getLogger(__name__)

BATCH = 500
CANCEL_TIMEOUT_S = 5.0


class JobWatch:
    """A client's view of its own job: its events as they come, its end, and its abandonment."""

    def __init__(
        self, store: JobStore, hub: EventHub, record: JobRecord, *, recheck_s: float
    ) -> None:
        self.store = store
        self.hub = hub
        self.record = record
        self.recheck_s = recheck_s
        self.finished = False
        self._abandoned = False

    async def events(self) -> AsyncGenerator[JobEvent, None]:
        """The job's events in order, ending with its terminal status event.

        The hub wakes this reader; a timeout re-reads once more, in case a notification is lost.
        """
        after = "0-0"
        with self.hub.waiter(self.record.id) as woken:
            while True:
                woken.clear()
                batch = await self.store.events(self.record.id, after=after, count=BATCH)
                for event in batch:
                    yield event
                    after = event.id
                    if event.terminal:
                        self.finished = True
                        return
                if len(batch) < BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), self.recheck_s)

    async def latest(self) -> JobRecord:
        """The job as stored now (result, usage, error)."""
        return await self.store.get(self.record.id, self.record.tenant)

    async def wait(self, request: Request) -> JobRecord | None:
        """The finished job, or ``None`` if the client disconnected first (the job is cancelled)."""
        follow = asyncio.ensure_future(self._until_end())
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait((follow, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            follow.cancel()
            gone.cancel()
            await asyncio.gather(follow, gone, return_exceptions=True)
            await self.abandon()
        if follow.cancelled():
            return None
        follow.result()  # re-raise what stopped the follower (the queue server went away)
        return await self.latest()

    async def _until_end(self) -> None:
        async with contextlib.aclosing(self.events()) as events:
            async for _ in events:
                pass

    async def abandon(self) -> None:
        """The client is gone: cancel the job unless it already ended (idempotent, shielded)."""
        if self.finished or self._abandoned:
            return
        self._abandoned = True
        with anyio.move_on_after(CANCEL_TIMEOUT_S, shield=True):
            try:
                await self.store.cancel(self.record.id, self.record.tenant)
            except InferqError as exc:
                log.warning("could not cancel abandoned job %s: %s", self.record.id, exc)

    async def on_disconnect(self, message: Message) -> None:
        """``EventSourceResponse``'s hook for a client that hung up."""
        await self.abandon()


async def _disconnected(request: Request) -> None:
    """Return once the client has hung up."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
