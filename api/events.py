"""The event hub: one pubsub subscription per API process wakes the local waiters of a job.

Workers and the Lua functions PUBLISH a job's id on ``keys.EVENTS_CHANNEL`` after every
append to its event stream. The hub holds the only subscription; a waiting SSE client owns
just an ``asyncio.Event`` that the hub sets, and reads new entries itself with XRANGE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queueing import keys

log = logging.getLogger(__name__)


class EventHub:
    """Routes job-id notifications from one subscription to the waiters in this process."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        channel: str = keys.EVENTS_CHANNEL,
        retry_s: float = 0.5,
    ) -> None:
        self.client = client
        self.channel = channel
        self.retry_s = retry_s
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the subscription is confirmed."""
        return self._subscribed.is_set()

    @property
    def waiting(self) -> int:
        """How many waiters are registered now."""
        return sum(len(group) for group in self._waiters.values())

    async def start(self, timeout_s: float = 10.0) -> None:
        """Subscribe, and return once the server has confirmed the subscription."""
        self._task = asyncio.create_task(self._run(), name="inferq-event-hub")
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout_s)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Drop the subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def waiter(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``job_id`` gets new entries (or the hub reconnects).

        Register before the first read: a notification between that read and the wait then
        leaves the event set instead of being lost. Clear it before each read.
        """
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            group = self._waiters.get(job_id)
            if group is not None:
                group.discard(event)
                if not group:
                    del self._waiters[job_id]

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for group in self._waiters.values():
            for event in group:
                event.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                log.warning("event hub lost its subscription (%s); reconnecting", exc)
            self._subscribed.clear()
            await asyncio.sleep(self.retry_s)

    async def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            async for message in pubsub.listen():
                if message["type"] == "message":
                    self._wake(message["data"])
                elif message["type"] == "subscribe":
                    # Anything published while we were away is in the streams: re-read all.
                    self._subscribed.set()
                    self._wake_all()
        finally:
            await pubsub.aclose()
