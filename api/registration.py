"""The API process's presence in ``iq:apis``: where it serves and where its metrics are."""

from __future__ import annotations

import os

import redis.asyncio as aioredis

from queueing import keys
from queueing.presence import Presence
from queueing.processes import process_name


def api_presence(client: aioredis.Redis, url: str) -> Presence:
    """This process's entry (base URL, metrics URL, pid), alive for 6 s, refreshed every 2 s."""
    name = process_name()
    entry = {"url": url, "metrics_url": f"{url}/metrics", "pid": os.getpid()}
    return Presence(
        client,
        keys.API_PROCESSES,
        name,
        keys.api_heartbeat(name),
        lambda: entry,
        interval_s=2.0,
        ttl_s=6,
    )
