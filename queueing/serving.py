"""Which models have a live worker: a worker's registry entry names its model, and its
heartbeat key (a TTL of a few seconds) says it is alive. A worker registers only once its
engine has started, so a model with a live worker is served."""

from __future__ import annotations

import json
from collections import Counter

import redis.asyncio as aioredis

from queueing import keys
from queueing.images import is_reference
from queueing.schemas import JobRecord

WAITING = "waiting for a worker"
PREPARING = "preparing images"


async def live_workers(client: aioredis.Redis) -> Counter[str]:
    """Live workers per model."""
    entries: dict[str, str] = await client.hgetall(keys.WORKERS)
    names = sorted(entries)
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(keys.heartbeat(name))
        alive: list[int] = await pipe.execute()
    live = [name for name, up in zip(names, alive, strict=True) if up]
    return Counter(json.loads(entries[name]).get("model", "") for name in live)


def preparing(record: JobRecord) -> bool:
    """True while the job's images wait for (or are in) the preprocess tier."""
    return not all(map(is_reference, record.images))
