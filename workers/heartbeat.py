"""Worker heartbeats: the worker's progress and load, published through its presence."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

from queueing import keys
from queueing.presence import Presence


class Progress:
    """What the worker has done so far: tokens produced, when it last made progress, and
    its token rate over the last ``window_s`` (read from the heartbeat and the metrics)."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.tokens = 0
        self.last_progress = 0.0
        self.window_s = window_s
        self._samples = deque([(time.monotonic(), 0)])
        self._lock = threading.Lock()

    def note(self, tokens: int) -> None:
        """Count ``tokens`` new output tokens."""
        self.tokens += tokens
        self.last_progress = time.time()

    def tokens_per_s(self) -> float:
        """Output tokens per second over the last ``window_s`` (at least since the last call)."""
        now, tokens = time.monotonic(), self.tokens
        with self._lock:
            samples = self._samples
            samples.append((now, tokens))
            while len(samples) > 2 and now - samples[1][0] >= self.window_s:
                samples.popleft()
            then, before = samples[0]
        return (tokens - before) / max(now - then, 1e-3)


@dataclass(frozen=True)
class Load:
    """The worker's in-flight work at one moment."""

    units: float
    jobs: int


def heartbeat(
    client: aioredis.Redis,
    worker: str,
    model: str,
    progress: Progress,
    load: Callable[[], Load],
    metrics_url: str | None,
    health: Callable[[], Mapping[str, object]],
    labels: Mapping[str, str] | None = None,
) -> Presence:
    """The worker's presence: ``iq:hb:{worker}`` alive for 5 s, its status in ``iq:workers``
    refreshed every second (load, token rate, last progress, model, pid, metrics URL, and
    what ``health()`` says: see :meth:`workers.loop.Worker.health`; ``labels``: the pool and
    replica type the autoscaler counts the worker in)."""

    def status() -> dict[str, object]:
        current = load()
        return {
            "in_flight_units": round(current.units, 4),
            "in_flight_jobs": current.jobs,
            "tokens_per_s": round(progress.tokens_per_s(), 2),
            "last_progress": progress.last_progress,
            "model": model,
            "pid": os.getpid(),
            "metrics_url": metrics_url or "",
            **(labels or {}),
            **health(),
        }

    return Presence(
        client, keys.WORKERS, worker, keys.heartbeat(worker), status, interval_s=1.0, ttl_s=5
    )


async def healthy_peers(client: aioredis.Redis, model: str, me: str) -> int:
    """Other workers serving ``model`` whose heartbeat is alive and who are not stalled."""
    entries: dict[str, str] = await client.hgetall(keys.WORKERS)
    candidates = []
    for name, raw in entries.items():
        entry = json.loads(raw)
        if name != me and entry.get("model") == model and entry.get("health", "ok") == "ok":
            candidates.append(name)
    if not candidates:
        return 0
    async with client.pipeline(transaction=False) as pipe:
        for name in candidates:
            pipe.exists(keys.heartbeat(name))
        alive: list[int] = await pipe.execute()
    return sum(alive)
