"""Tenants' token buckets and queued-units counters, on the real server (single and cluster)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from queueing import keys
from queueing.calls import COUNTERS
from queueing.catalogue import ModelSpec
from queueing.jobstore import JobStore
from queueing.ratelimit import QUEUED, REQUESTS, TOKENS, RateLimited, RateLimiter, duration
from queueing.schemas import JobResult, JobStatus
from queueing.settings import QueueSettings
from queueing.tenancy import TenantLimits
from queueing.workqueue import WorkQueue
from tests.conftest import PARTITIONS
from tests.queueing.records import claim_all, record

SPEC = ModelSpec(name="m", path=Path("."), context_length=100, prompt_weight=1, output_weight=1)


async def test_a_bucket_refuses_when_empty_and_refills_at_its_rate(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    limiter = RateLimiter(redis_client, queue_settings)
    limits = TenantLimits(requests_per_minute=600)  # 10 a second
    drained = await limiter.charge("alice", limits, requests=600, units=0)
    assert drained.requests is not None and drained.requests.remaining < 1
    assert 0 < drained.requests.reset_ms <= 60_000 and drained.tokens is None
    with pytest.raises(RateLimited) as refused:
        await limiter.charge("alice", limits, requests=1, units=0)
    assert refused.value.kind == REQUESTS and refused.value.code == "rate_limit_exceeded"
    assert 0 < refused.value.retry_after_ms <= 100 and refused.value.retry_after_s == 1
    assert "requests per min (RPM): Limit 600" in refused.value.message
    await limiter.charge("bob", limits, requests=1, units=0)  # another tenant: its own bucket
    await asyncio.sleep(refused.value.retry_after_ms / 1000 + 0.02)
    again = await limiter.charge("alice", limits, requests=1, units=0)
    assert again.requests is not None and again.requests.remaining < 1


async def test_both_buckets_are_charged_or_neither(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    limiter = RateLimiter(redis_client, queue_settings)
    limits = TenantLimits(requests_per_minute=100, units_per_minute=60)
    await limiter.charge("t", limits, requests=1, units=50)
    with pytest.raises(RateLimited) as refused:
        await limiter.charge("t", limits, requests=1, units=20)
    assert refused.value.kind == TOKENS
    assert 7_000 < refused.value.retry_after_ms <= 10_000, "(20 - 10) units at 1 unit/s"
    standing = await limiter.read("t", limits)
    assert standing.requests is not None and standing.tokens is not None
    assert 98.9 < standing.requests.remaining < 99.9, "the refused request charged nothing"
    assert 9.9 < standing.tokens.remaining < 12


async def test_a_job_larger_than_the_bucket_passes_when_full_and_leaves_a_debt(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    limiter = RateLimiter(redis_client, queue_settings)
    limits = TenantLimits(units_per_minute=10)
    await limiter.charge("t", limits, requests=1, units=15)
    with pytest.raises(RateLimited) as refused:
        await limiter.charge("t", limits, requests=1, units=1)
    assert 33_000 < refused.value.retry_after_ms <= 36_000, "from -5 back to 1 at 1/6 per second"
    assert refused.value.retry_after_s == math.ceil(refused.value.retry_after_ms / 1000)


async def test_an_unlimited_tenant_leaves_no_trace(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    limiter = RateLimiter(redis_client, queue_settings)
    standing = await limiter.charge("free", TenantLimits(), requests=1, units=5)
    assert standing.requests is None and standing.tokens is None
    assert await redis_client.exists(keys.rate_limit("free")) == 0


async def test_a_full_bucket_expires(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    limiter = RateLimiter(redis_client, queue_settings)
    await limiter.charge("t", TenantLimits(requests_per_minute=60_000), requests=1, units=0)
    ttl = await redis_client.pttl(keys.rate_limit("t"))
    assert 0 < ttl <= 1_001, "absent means full: the key lives until the bucket refills"


def test_reset_durations_are_written_as_openai_writes_them() -> None:
    assert [duration(ms) for ms in (0, 20, 999, 1000, 1500, 6000, 360_000, 3_723_400)] == [
        "0s",
        "20ms",
        "999ms",
        "1s",
        "1.5s",
        "6s",
        "6m0s",
        "1h2m3.4s",
    ]


async def _queued(limiter: RateLimiter, tenant: str) -> float:
    return round(await limiter.queued_units(tenant, SPEC.name), 6)


async def test_queued_units_stay_exact_through_every_end_of_a_job(
    redis_client: aioredis.Redis,
) -> None:
    settings = QueueSettings(partitions=PARTITIONS, lease_ms=100, max_deliveries=1)
    store = JobStore(redis_client, settings)
    limiter = RateLimiter(redis_client, settings)
    worker = WorkQueue(redis_client, SPEC, "w", settings)
    jobs = [record(tenant="alice", units=u) for u in (0.5, 0.25, 0.125, 1.0, 2.0)]
    for job in jobs:
        await store.enqueue(job)
    await store.enqueue(record(tenant="bob", units=3.0))
    assert await _queued(limiter, "alice") == 3.875 and await _queued(limiter, "bob") == 3.0

    assert (await store.cancel(jobs[0].id, "alice")).status is JobStatus.CANCELLED  # queued
    assert await _queued(limiter, "alice") == 3.375
    held = {job.id: job for job in await claim_all(worker, 100.0, 10)}
    assert len(held) == 5, "alice's four and bob's one"
    assert await _queued(limiter, "alice") == 3.375, "running jobs still count"
    await worker.complete(held[jobs[1].id], JobStatus.SUCCEEDED, result=JobResult(text="x"))
    await worker.complete(held[jobs[2].id], JobStatus.FAILED, error="engine error")
    await store.cancel(jobs[3].id, "alice")  # running: its worker ends it
    await worker.complete(held[jobs[3].id], JobStatus.CANCELLED)
    assert await _queued(limiter, "alice") == 2.0
    await worker.complete(held[jobs[3].id], JobStatus.CANCELLED)  # a second end changes nothing
    assert await _queued(limiter, "alice") == 2.0

    assert await _queued(limiter, "bob") == 3.0
    bobs = next(job for job in held.values() if job.record.tenant == "bob")
    await worker.complete(bobs, JobStatus.SUCCEEDED, result=JobResult(text="x"))
    await asyncio.sleep(0.15)  # jobs[4]'s lease lapses; its next delivery dead-letters it
    assert await worker.reclaim(10) == []
    assert (await store.get(jobs[4].id, "alice")).status is JobStatus.FAILED
    assert await _queued(limiter, "alice") == 0 and await _queued(limiter, "bob") == 0
    units = [await redis_client.hgetall(keys.units(SPEC.name, p)) for p in range(PARTITIONS)]
    assert not any(f.startswith(COUNTERS["TENANT_OF"]) for raw in units for f in raw), (
        "a tenant back at zero leaves no field behind"
    )


async def test_the_queued_units_cap_counts_admissions_on_their_way(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    limiter = RateLimiter(redis_client, queue_settings)
    limits = TenantLimits(max_queued_units=1.0)
    store = JobStore(redis_client, queue_settings)
    async with limiter.admitting("alice", limits, SPEC.name, 0.75):
        with pytest.raises(RateLimited) as refused:
            async with limiter.admitting("alice", limits, SPEC.name, 0.5):
                pass
        assert refused.value.kind == QUEUED
        assert refused.value.retry_after_s == queue_settings.retry_after_s
        await store.enqueue(record(tenant="alice", units=0.75))
    with pytest.raises(RateLimited):
        async with limiter.admitting("alice", limits, SPEC.name, 0.5):
            pass
    async with limiter.admitting("alice", limits, SPEC.name, 0.25):
        pass  # fits exactly
    async with limiter.admitting("bob", limits, SPEC.name, 5.0):
        pass  # a tenant with nothing queued is never refused by the cap
