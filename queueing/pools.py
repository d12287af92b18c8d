"""Worker pools in the registry: the autoscaler's decisions, what actuators run, its lease.

The autoscaler writes each pool's desired replicas and the reason; ``inferq up``'s
supervisor runs that many workers and says how many it runs; ``inferq status`` shows both.
One autoscaler acts at a time: it holds a lease (a key with a TTL) and renews it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from queueing import keys
from queueing.connection import Client
from queueing.errors import translated

# Renew the lease only while we still hold it (compare and expire in one step).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class PoolDecision:
    """A pool's last decision: replicas wanted, why, and the figures behind it."""

    pool: str
    model: str
    desired: int
    reason: str
    at: float
    need_units_s: float = 0.0
    arrival_units_s: float = 0.0


async def publish_decision(client: Client, decision: PoolDecision) -> None:
    """Record ``decision`` as the pool's latest."""
    with translated("cannot record the autoscaler's decision"):
        await client.hset(keys.POOLS, decision.pool, json.dumps(asdict(decision)))


async def read_decisions(client: Client) -> dict[str, PoolDecision]:
    """Every pool's latest decision."""
    with translated("cannot read the autoscaler's decisions"):
        raw: dict[str, str] = await client.hgetall(keys.POOLS)
    return {pool: PoolDecision(**json.loads(value)) for pool, value in raw.items()}


async def publish_running(client: Client, running: dict[str, int]) -> None:
    """What an actuator runs now, per pool (started or starting)."""
    if not running:
        return
    now = round(time.time(), 3)
    fields = {pool: json.dumps({"running": n, "at": now}) for pool, n in running.items()}
    with translated("cannot record the running replicas"):
        await client.hset(keys.POOLS_RUNNING, mapping=fields)


async def read_running(client: Client) -> dict[str, int]:
    """Replicas each pool's actuator runs, as it last said."""
    with translated("cannot read the running replicas"):
        raw: dict[str, str] = await client.hgetall(keys.POOLS_RUNNING)
    return {pool: int(json.loads(value)["running"]) for pool, value in raw.items()}


async def take_lease(client: Client, holder: str, ttl_s: float) -> bool:
    """Hold the autoscaler lease for ``ttl_s``: taken if free, renewed if ours."""
    ttl_ms = max(1, int(ttl_s * 1000))
    with translated("cannot take the autoscaler lease"):
        if await client.set(keys.AUTOSCALER_LEASE, holder, nx=True, px=ttl_ms):
            return True
        return bool(await client.eval(_RENEW, 1, keys.AUTOSCALER_LEASE, holder, ttl_ms))


async def lease_holder(client: Client) -> str | None:
    """Who holds the lease now, if anyone."""
    with translated("cannot read the autoscaler lease"):
        holder: str | None = await client.get(keys.AUTOSCALER_LEASE)
    return holder


async def release_lease(client: Client, holder: str) -> None:
    """Give the lease up (if still ours), so that a waiting autoscaler takes over at once."""
    with translated("cannot release the autoscaler lease"):
        await client.eval(_RELEASE, 1, keys.AUTOSCALER_LEASE, holder)
