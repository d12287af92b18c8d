"""Connecting to the queue server and loading inferq's Lua library into it."""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queueing.errors import ServerError

LUA_SOURCE = resources.files("queueing").joinpath("lua/inferq.lua").read_text()


async def connect(url: str, *, max_connections: int = 64, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client (hiredis parser when installed) with inferq's functions loaded."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url, decode_responses=True, max_connections=max_connections, **kwargs
    )
    try:
        await load_functions(client)
    except RedisError as exc:
        await client.aclose()
        raise ServerError(f"cannot use the queue server at {url}: {exc}") from exc
    return client


async def load_functions(client: aioredis.Redis) -> None:
    """Load (or replace) the ``inferq`` Lua library; idempotent."""
    await client.function_load(LUA_SOURCE, replace=True)
