"""Worker heartbeats: a key with a TTL that says "alive", and a status entry in a hash."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queueing import keys

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """What the worker has done so far (tokens produced, when it last made progress)."""

    tokens: int = 0
    last_progress: float = 0.0

    def note(self, tokens: int) -> None:
        """Count ``tokens`` new output tokens."""
        self.tokens += tokens
        self.last_progress = time.time()

    def answered(self) -> None:
        """The engine answered (a probe): progress, though no job got a token."""
        self.last_progress = time.time()


@dataclass(frozen=True)
class Load:
    """The worker's in-flight work at one moment."""

    units: float
    jobs: int


class Heartbeat:
    """Every ``interval_s``: SET ``iq:hb:{worker}`` with a TTL and HSET ``iq:workers``."""

    def __init__(
        self,
        client: aioredis.Redis,
        worker: str,
        model: str,
        progress: Progress,
        load: Callable[[], Load],
        *,
        interval_s: float = 1.0,
        ttl_s: int = 5,
    ) -> None:
        self.client = client
        self.worker = worker
        self.model = model
        self.progress = progress
        self.load = load
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self._last = (time.monotonic(), progress.tokens)
        self.metrics_url: str | None = None

    def status(self) -> dict[str, float | int | str]:
        """The status entry: load, token rate since the last beat, progress, model, pid, metrics."""
        now, tokens = time.monotonic(), self.progress.tokens
        then, before = self._last
        self._last = (now, tokens)
        load = self.load()
        return {
            "in_flight_units": round(load.units, 4),
            "in_flight_jobs": load.jobs,
            "tokens_per_s": round((tokens - before) / max(now - then, 1e-3), 2),
            "last_progress": self.progress.last_progress,
            "model": self.model,
            "pid": os.getpid(),
            "metrics_url": self.metrics_url or "",
        }

    async def beat(self) -> None:
        """Send one heartbeat."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(keys.heartbeat(self.worker), "1", ex=self.ttl_s)
            pipe.hset(keys.WORKERS, self.worker, json.dumps(self.status()))
            await pipe.execute()

    async def run(self) -> None:
        """Beat until cancelled; a failed beat is logged, not fatal."""
        while True:
            try:
                await self.beat()
            except RedisError as exc:
                log.warning("heartbeat of %s failed: %s", self.worker, exc)
            await asyncio.sleep(self.interval_s)

    async def clear(self) -> None:
        """Say goodbye: remove the key and the status entry."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(keys.heartbeat(self.worker))
            pipe.hdel(keys.WORKERS, self.worker)
            await pipe.execute()
