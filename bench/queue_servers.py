"""The queue bench's servers: a single embedded Valkey, or a 3-primary embedded cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis


def prepared(urls: Sequence[str], hz: int | None = None) -> dict[str, str]:
    """FLUSHALL every node (the Lua library stays), set ``hz`` where given; returns the
    version and persistence config of the first node and the AOF rewrites of all of them."""
    rewrites = 0
    config: dict[str, str] = {}
    for url in urls:
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            rewrites += int(client.info("persistence")["aof_rewrites"])
            client.flushall()
            if hz:
                client.config_set("hz", hz)
            if not config:
                info: dict[str, Any] = client.info("server")
                config = {
                    "valkey": str(info.get("valkey_version", info["redis_version"])),
                    **client.config_get("appendonly", "appendfsync", "hz"),
                }
        finally:
            client.close()
    return {**config, "aof_rewrites": str(rewrites)}


def node_urls(host: str, ports: Sequence[int]) -> list[str]:
    """``redis://`` URLs of a cluster's nodes, one each (for commands sent to every node)."""
    return [f"redis://{host}:{port}" for port in ports]
