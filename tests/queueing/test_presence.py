"""Presence entries: published with an alive key, removed on goodbye, forgotten when long stale."""

from __future__ import annotations

import json
import time

import redis.asyncio as aioredis

from queueing.presence import SEEN, Presence

REGISTRY = "iq:test:registry"


def presence(client: aioredis.Redis, name: str, **fields: object) -> Presence:
    return Presence(
        client, REGISTRY, name, f"iq:test:alive:{name}", lambda: fields, ttl_s=5, forget_after_s=60
    )


async def test_a_beat_publishes_the_entry_and_an_expiring_alive_key(
    redis_client: aioredis.Redis,
) -> None:
    one = presence(redis_client, "one", url="http://h:1", pid=7)
    before = time.time()
    await one.beat()
    entry = json.loads(await redis_client.hget(REGISTRY, "one"))
    assert entry["url"] == "http://h:1" and entry["pid"] == 7
    assert before - 0.001 <= entry[SEEN] <= time.time() + 0.001
    assert 0 < await redis_client.ttl(one.alive_key) <= 5
    await one.clear()
    assert await redis_client.hget(REGISTRY, "one") is None
    assert not await redis_client.exists(one.alive_key)


async def test_entries_long_stale_are_forgotten_and_recent_ones_kept(
    redis_client: aioredis.Redis,
) -> None:
    now = time.time()
    await redis_client.hset(REGISTRY, "crashed long ago", json.dumps({SEEN: now - 600}))
    await redis_client.hset(REGISTRY, "crashed just now", json.dumps({SEEN: now - 10}))
    await presence(redis_client, "alive").beat()
    assert sorted(await redis_client.hkeys(REGISTRY)) == ["alive", "crashed just now"]
