"""Fair sharing inside the pick: counters, the lift, reservation credit, and the bookkeeping
of cancel and release (one partition, so the order is the pick's alone)."""

from __future__ import annotations

import time
from pathlib import Path

import redis.asyncio as aioredis

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.fairshare import SharesArgs
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from queueing.settings import QueueSettings
from queueing.tenancy import TenantShare
from queueing.workqueue import WorkQueue

SPEC = ModelSpec(name="m", path=Path("."), context_length=4096, prompt_weight=1, output_weight=1)
ONE = QueueSettings(partitions=1, ageing_ms=10**9)


def record(tenant: str, units: float = 0.1, job_class: JobClass = JobClass.STANDARD) -> JobRecord:
    """A queued job of ``tenant`` in the only partition."""
    return JobRecord(
        id=keys.new_job_id(0),
        model=SPEC.name,
        status=JobStatus.QUEUED,
        job_class=job_class,
        estimated_units=units,
        created_at=time.time(),
        tenant=tenant,
        band=0,
        prompt_tokens=1,
        prompt="p",
        params=SamplingParams(max_tokens=4),
    )


async def served(queue: WorkQueue, count: int) -> list[str]:
    """Tenants of the next ``count`` jobs claimed one at a time (each completed at once)."""
    tenants = []
    for _ in range(count):
        [job] = await queue.claim(10.0, 1, idle=True)
        tenants.append(job.record.tenant)
        assert await queue.complete(job, JobStatus.SUCCEEDED) == 1
    return tenants


async def test_units_not_requests_and_no_banked_credit(redis_client: aioredis.Redis) -> None:
    store = JobStore(redis_client, ONE)
    queue = WorkQueue(redis_client, SPEC, "w", ONE)
    await store.enqueue_many([record("a", 0.2) for _ in range(6)])
    await store.enqueue_many([record("b", 0.1) for _ in range(12)])
    order = await served(queue, 12)
    assert order.count("a") == 4 and order.count("b") == 8, "equal units: 0.8 each"
    assert sorted(await served(queue, 6)) == ["a"] * 2 + ["b"] * 4  # the rest
    # "a" alone for a while: "c" arriving then is lifted to a's counter, not served 10 in a row.
    await store.enqueue_many([record("a", 0.1) for _ in range(20)])
    assert await served(queue, 10) == ["a"] * 10
    await store.enqueue_many([record("c", 0.1) for _ in range(10)])
    assert await served(queue, 6) == ["c", "a", "c", "a", "c", "a"]


async def test_a_reservation_goes_first_then_shares(redis_client: aioredis.Redis) -> None:
    store = JobStore(redis_client, ONE)
    queue = WorkQueue(redis_client, SPEC, "w", ONE)
    gold = TenantShare(reserved={SPEC.name: 0.1}).model_dump_json()  # burst: 0.5 units
    await redis_client.hset(keys.TENANT_SHARES, "gold", gold)
    await store.enqueue_many([record("flood") for _ in range(10)])
    await store.enqueue_many([record("gold") for _ in range(10)])
    # Credit starts full (0.5 units): gold first while it lasts (the fifth job leaves it at 0
    # plus what accrued meanwhile), then the shared part, where gold competes as any tenant.
    order = await served(queue, 8)
    assert order[:5] == ["gold"] * 5, order
    assert "flood" in order[5:]


async def test_the_pick_says_when_reserved_credit_is_due(redis_client: aioredis.Redis) -> None:
    store = JobStore(redis_client, ONE)
    queue = WorkQueue(redis_client, SPEC, "w", ONE)
    gold = TenantShare(reserved={SPEC.name: 0.1}).model_dump_json()  # burst: 0.5 units
    await redis_client.hset(keys.TENANT_SHARES, "gold", gold)
    await store.enqueue_many([record("flood") for _ in range(3)])
    await store.enqueue_many([record("gold", 0.3) for _ in range(3)])
    await queue.shares.refresh()
    await queue.refresh()
    assert queue.view.nudged(0, time.time() * 1000), "full credit: due at once"
    assert await served(queue, 2) == ["gold", "gold"]  # 0.5 - 0.6: 0.1 units of debt
    now_ms = time.time() * 1000  # at 0.1 units/s, due within the next second
    assert not queue.view.nudged(0, now_ms) and queue.view.nudged(0, now_ms + 1_001)


async def test_cancel_and_release_keep_the_counts(redis_client: aioredis.Redis) -> None:
    store = JobStore(redis_client, ONE)
    queue = WorkQueue(redis_client, SPEC, "w", ONE)
    first, second = record("a"), record("a")
    await store.enqueue_many([first, second])
    fair = keys.fair(SPEC.name, 0)
    active = keys.active(SPEC.name, 0, JobClass.STANDARD)
    assert await redis_client.hget(fair, "n:standard:a") == "2"
    await store.cancel(first.id, "a")
    assert await redis_client.hget(fair, "n:standard:a") == "1"
    [job] = await queue.claim(10.0, 1, idle=True)
    assert job.id == second.id and await redis_client.zcard(active) == 0
    assert await queue.release(job, "shutdown", graceful=True)
    assert await redis_client.zrange(active, 0, -1) == ["a"]
    [again] = await queue.claim(10.0, 1, idle=True)
    assert again.id == second.id and again.record.attempts == 1
    assert await redis_client.hget(fair, "n:standard:a") is None


def test_shares_args_carry_weights_and_this_models_reservations_per_partition() -> None:
    args = SharesArgs(None, "m", 4, refresh_s=1.0, burst_s=5.0)  # type: ignore[arg-type]
    args.set(
        {
            "gold": TenantShare(weight=2, reserved={"m": 2.0, "other": 9.0}),
            "plain": TenantShare(),
            "broken": None,
        }
    )
    assert args.weights == '{"gold":2.0}'
    assert args.reserved == '{"gold":[0.5,2.5]}'
