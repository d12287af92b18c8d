"""A process's presence: an entry in a registry hash, and an alive key with a TTL.

Workers (``iq:workers``) and API processes (``iq:apis``) announce themselves this way.
An entry whose alive key has expired is stale (its process died without saying goodbye);
a beat forgets entries that have been stale for ``forget_after_s`` (it looks every tenth
of that, not at every beat, so a registry of many processes is not read by all of them
every second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping

from queueing.connection import Client
from queueing.errors import ServerError, translated

log = logging.getLogger(__name__)

SEEN = "seen"  # the entry's field: when the process last beat (Unix seconds)


class Presence:
    """Every ``interval_s``: SET ``alive_key`` with a TTL and HSET ``registry[name]``.

    ``entry`` is called at each beat for the fields to publish; ``seen`` is added.
    """

    def __init__(
        self,
        client: Client,
        registry: str,
        name: str,
        alive_key: str,
        entry: Callable[[], Mapping[str, object]],
        *,
        interval_s: float = 1.0,
        ttl_s: int = 5,
        forget_after_s: float = 300.0,
    ) -> None:
        self.client = client
        self.registry = registry
        self.name = name
        self.alive_key = alive_key
        self.entry = entry
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.forget_after_s = forget_after_s
        self._looked_at = float("-inf")

    async def beat(self) -> None:
        """Refresh the entry and the alive key; now and then, forget entries long stale."""
        now = time.time()
        fields = {**self.entry(), SEEN: round(now, 3)}
        with translated(f"presence of {self.name}"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.alive_key, "1", ex=self.ttl_s)
                pipe.hset(self.registry, self.name, json.dumps(fields))
                await pipe.execute()
            if now - self._looked_at >= self.forget_after_s / 10:
                self._looked_at = now
                await self._forget_stale(now)

    async def _forget_stale(self, now: float) -> None:
        entries: dict[str, str] = await self.client.hgetall(self.registry)
        gone = [
            name
            for name, raw in entries.items()
            if now - float(json.loads(raw).get(SEEN) or 0) > self.forget_after_s
        ]
        if gone:
            await self.client.hdel(self.registry, *gone)

    async def clear(self) -> None:
        """Say goodbye: remove the alive key and the entry."""
        with translated(f"presence of {self.name}"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.delete(self.alive_key)
                pipe.hdel(self.registry, self.name)
                await pipe.execute()

    async def run(self) -> None:
        """Beat until cancelled; a failed beat is logged, not fatal."""
        while True:
            try:
                await self.beat()
            except ServerError as exc:
                log.warning("presence of %s in %s failed: %s", self.name, self.registry, exc)
            await asyncio.sleep(self.interval_s)

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Present, refreshed in the background, while the block runs; gone after it."""
        task = asyncio.create_task(self.run(), name=f"presence {self.name}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            with contextlib.suppress(ServerError):
                await self.clear()
