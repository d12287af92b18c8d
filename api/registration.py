"""The API process's entry in ``iq:apis``: where it serves, kept alive by a key with a TTL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queueing import keys
from queueing.processes import process_name

log = logging.getLogger(__name__)


class Registration:
    """Every ``interval_s``: SET ``iq:api:{name}`` with a TTL and HSET ``iq:apis``."""

    def __init__(
        self,
        client: aioredis.Redis,
        url: str,
        *,
        interval_s: float = 2.0,
        ttl_s: int = 6,
    ) -> None:
        self.client = client
        self.url = url
        self.name = process_name()
        self.interval_s = interval_s
        self.ttl_s = ttl_s

    def entry(self) -> dict[str, str | int]:
        """The process's entry: its base URL, metrics URL and pid."""
        return {"url": self.url, "metrics_url": f"{self.url}/metrics", "pid": os.getpid()}

    async def beat(self) -> None:
        """Refresh the entry and its alive key."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(keys.api_heartbeat(self.name), "1", ex=self.ttl_s)
            pipe.hset(keys.API_PROCESSES, self.name, json.dumps(self.entry()))
            await pipe.execute()

    async def clear(self) -> None:
        """Remove the entry and its alive key."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(keys.api_heartbeat(self.name))
            pipe.hdel(keys.API_PROCESSES, self.name)
            await pipe.execute()

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except RedisError as exc:
                log.warning("API registration %s failed: %s", self.name, exc)
            await asyncio.sleep(self.interval_s)

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Registered, and refreshed in the background, while the block runs."""
        task = asyncio.create_task(self._run(), name="api registration")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            with contextlib.suppress(RedisError):
                await self.clear()
