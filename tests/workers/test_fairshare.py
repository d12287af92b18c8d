"""Tenants flooding one model share it by weighted fairness in units (the claim's VTC)."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from queueing import keys
from queueing.jobstore import JobStore
from queueing.schemas import JobRecord
from queueing.settings import QueueSettings, WorkerSettings
from queueing.tenancy import TenantShare
from tests.conftest import PARTITIONS
from tests.workers.support import SPEC, job, running_worker, wait_until
from workers.engines.scripted import ScriptedEngine

SETTINGS = QueueSettings(partitions=PARTITIONS, lease_ms=5_000)
# Four jobs of 0.1 units (or eight of 0.05) in flight: the backlog waits in the queue.
WORKER = WorkerSettings(unit_budget=0.4, block_ms=200, flush_ms=20, flush_tokens=16)
RESERVING = WORKER.model_copy(update={"unit_budget": 0.35})  # ten jobs of 0.035 units
CLAIM_BATCH = 8  # the worker's default claim_batch
WINDOW_UNITS = 16.0  # of the 80 units the tenants queue: each stays backlogged in every partition


def tenant_jobs(tenant: str, count: int, units: float) -> list[JobRecord]:
    """``count`` queued jobs of ``tenant`` costing ``units`` each, placed round robin over the
    partitions as the API places them."""
    first = job(f"{tenant} job", max_tokens=2, units=units)
    return [
        first.model_copy(update={"tenant": tenant, "id": keys.new_job_id(n % PARTITIONS)})
        for n in range(count)
    ]


def interleaved(*floods: list[JobRecord]) -> list[JobRecord]:
    """The floods' jobs in the order they arrive when the tenants send at once."""
    longest = max(len(flood) for flood in floods)
    return [flood[n] for n in range(longest) for flood in floods if n < len(flood)]


async def served_units(
    redis_client: aioredis.Redis, queue_url: str, floods: dict[str, tuple[int, float]]
) -> dict[str, float]:
    """Queue every tenant's flood at once, let one worker serve ``WINDOW_UNITS``, and return
    the units each tenant had started in that window (in the order the engine started them)."""
    store = JobStore(redis_client, SETTINGS)
    records = interleaved(*(tenant_jobs(tenant, n, units) for tenant, (n, units) in floods.items()))
    assert all(isinstance(i, str) for i in await store.enqueue_many(records))
    by_id = {r.id: r for r in records}
    engine = ScriptedEngine(token_delay_s=0.001)
    start = time.monotonic()
    async with running_worker(queue_url, engine, SETTINGS, WORKER):

        async def window_served() -> bool:
            return sum(by_id[i].estimated_units for i in engine.started) >= WINDOW_UNITS

        await wait_until(window_served, 60, "the window's units to be served")
    elapsed = time.monotonic() - start
    units = dict.fromkeys(floods, 0.0)
    for job_id in engine.started:
        units[by_id[job_id].tenant] += by_id[job_id].estimated_units
        if sum(units.values()) >= WINDOW_UNITS - 1e-9:
            break
    print(f"\nunits served in the window ({elapsed:.1f} s): {units}")
    return units


async def test_equal_weights_share_units_not_requests(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    """Tenant ``big`` sends jobs twice the size of ``small``'s: equal units, not requests."""
    units = await served_units(redis_client, queue_url, {"big": (400, 0.1), "small": (800, 0.05)})
    gap = abs(units["big"] - units["small"]) / max(units.values())
    print(f"equal weights: gap {gap:.1%} (goal <= 10%)")
    assert gap <= 0.10, units


async def test_weights_three_to_one(redis_client: aioredis.Redis, queue_url: str) -> None:
    await redis_client.hset(keys.TENANT_SHARES, "heavy", TenantShare(weight=3).model_dump_json())
    units = await served_units(
        redis_client, queue_url, {"heavy": (1200, 0.05), "light": (400, 0.05)}
    )
    ratio = units["heavy"] / units["light"]
    print(f"weights 3:1: ratio {ratio:.2f} (goal 2.7 to 3.3)")
    assert 2.7 <= ratio <= 3.3, units


async def test_a_late_tenant_is_served_at_once(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    """A tenant arriving while another's backlog waits is served at once, not after the
    backlog: at most a claim already on its way (``CLAIM_BATCH`` jobs) and one job per
    partition (a tie at the lifted counter) of the other tenant go before its last job."""
    store = JobStore(redis_client, SETTINGS)
    flood = tenant_jobs("early", 400, 0.05)
    await store.enqueue_many(flood)
    engine = ScriptedEngine(token_delay_s=0.001)
    async with running_worker(queue_url, engine, SETTINGS, WORKER):

        async def flowing() -> bool:
            return len(engine.started) >= 40

        await wait_until(flowing, 30, "the flood to be flowing")
        late = tenant_jobs("late", 4, 0.05)
        arrived_at, started_before = time.monotonic(), len(engine.started)
        await store.enqueue_many(late)

        async def late_started() -> bool:
            return all(r.id in engine.started for r in late)

        waited_s = await wait_until(late_started, 30, "the late tenant's jobs to start")
    position = {job_id: n for n, job_id in enumerate(engine.started)}
    overtaken = max(position[r.id] for r in late) - started_before - len(late) + 1
    backlog = len(flood) - started_before
    print(
        f"\nlate tenant: its 4 jobs started within {waited_s * 1000:.0f} ms of arriving "
        f"(after {time.monotonic() - arrived_at:.2f} s), {overtaken} of the other tenant's "
        f"{backlog} waiting jobs started before its last one"
    )
    assert overtaken <= CLAIM_BATCH + PARTITIONS, "the late tenant waited behind the backlog"


async def test_a_reservation_is_served_at_its_rate_over_the_partitions(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    """Reserved credit accrues per partition while claims visit partitions by their oldest
    job: the tenant's oldest jobs wait in one partition at a time. It still gets >= 95% of a
    reservation of a third of the throughput while a weight-9 tenant floods."""
    settings = SETTINGS.model_copy(
        update={"shares_refresh_s": 0.1, "reserve_burst_s": 0.25, "ageing_ms": 1_000}
    )
    store = JobStore(redis_client, settings)
    await redis_client.hset(keys.TENANT_SHARES, "flood", TenantShare(weight=9).model_dump_json())
    sent: list[JobRecord] = []

    async def units_per_s() -> dict[str, float]:
        """Send 300 + 100 more jobs, and the units/s each tenant started in a 4 s window
        after 1.5 s."""
        more = interleaved(tenant_jobs("flood", 300, 0.035), tenant_jobs("gold", 100, 0.035))
        sent.extend(more)
        await store.enqueue_many(more)
        await asyncio.sleep(1.5)
        since = time.time()
        await asyncio.sleep(4.0)
        until, rates = time.time(), {"flood": 0.0, "gold": 0.0}
        for record in sent:
            started_at = (await store.get(record.id, record.tenant)).started_at
            if started_at and since <= started_at < until:
                rates[record.tenant] += record.estimated_units / (until - since)
        return rates

    engine = ScriptedEngine(token_delay_s=0.15)  # jobs of 2 tokens, ten at once: ~1 unit/s
    async with running_worker(queue_url, engine, settings, RESERVING):
        before = await units_per_s()
        reserved = sum(before.values()) / 3
        gold = TenantShare(reserved={SPEC.name: reserved}).model_dump_json()
        await redis_client.hset(keys.TENANT_SHARES, "gold", gold)
        after = await units_per_s()
    print(f"\nno reservation: {before}; reserved {reserved:.3f} units/s: {after}")
    assert before["gold"] < 0.95 * reserved, "the test needs a reservation above the fair share"
    assert after["gold"] >= 0.95 * reserved
