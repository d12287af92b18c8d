"""The event hub: one sharded subscription per API process wakes the local waiters of a job.

Workers and the Lua functions SPUBLISH a job's id on its partition's events channel after
every append to its event stream. The hub holds the only subscription (one connection per
node, through :class:`queueing.subscriber.ShardedSubscriber`); a waiting SSE client owns
just an ``asyncio.Event`` that the hub sets, and reads new entries itself with XRANGE.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from queueing import keys
from queueing.connection import Client
from queueing.subscriber import ShardedSubscriber


class EventHub:
    """Routes job-id notifications from one subscription to the waiters in this process."""

    def __init__(self, client: Client, partitions: int, *, retry_s: float = 0.5) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._subscriber = ShardedSubscriber(
            client,
            [keys.events_channel(p) for p in range(partitions)],
            lambda _channel, job_id: self._wake(job_id),
            on_subscribed=self._wake_all,  # what was published meanwhile is in the streams
            retry_s=retry_s,
            name="event hub",
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the subscription is confirmed."""
        return self._subscriber.subscribed.is_set()

    @property
    def waiting(self) -> int:
        """How many waiters are registered now."""
        return sum(len(group) for group in self._waiters.values())

    async def start(self, timeout_s: float = 10.0) -> None:
        """Subscribe, and return once the server has confirmed the subscription."""
        self._task = asyncio.create_task(self._subscriber.run(), name="inferq-event-hub")
        try:
            await asyncio.wait_for(self._subscriber.subscribed.wait(), timeout_s)
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
