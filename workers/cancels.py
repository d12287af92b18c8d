"""Cancel notifications: one pubsub subscription on ``iq:cancel`` per worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queueing import keys

log = logging.getLogger(__name__)


class CancelListener:
    """Calls ``on_cancel(job_id)`` for every id published on the cancel channel.

    Messages missed while disconnected are not lost for good: lease renewal also reports
    cancelled jobs.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        on_cancel: Callable[[str], Awaitable[None]],
        *,
        retry_s: float = 0.5,
    ) -> None:
        self.client = client
        self.on_cancel = on_cancel
        self.retry_s = retry_s
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled, resubscribing after connection errors."""
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                log.warning("cancel subscription lost (%s); resubscribing", exc)
            self.subscribed.clear()
            await asyncio.sleep(self.retry_s)

    async def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(keys.CANCEL_CHANNEL)
            async for message in pubsub.listen():
                if message["type"] == "message":
                    try:
                        await self.on_cancel(str(message["data"]))
                    except Exception:
                        log.exception("handling cancel of %s failed", message["data"])
                elif message["type"] == "subscribe":
                    self.subscribed.set()
        finally:
            await pubsub.aclose()
