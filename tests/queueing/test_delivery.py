"""Leases, reclaim, duplicate delivery, dead-letter and cancel at the queue level."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.errors import QueueFull
from queueing.jobstore import JobStore
from queueing.schemas import JobResult, JobStatus
from queueing.settings import QueueSettings
from queueing.subscriber import ShardedSubscriber
from queueing.workqueue import EmitOutcome, WorkQueue
from tests.conftest import PARTITIONS
from tests.queueing.records import record

SPEC = ModelSpec(name="m", path=Path("."), context_length=100, prompt_weight=1, output_weight=1)


def workers(client: aioredis.Redis, settings: QueueSettings) -> tuple[WorkQueue, WorkQueue]:
    return WorkQueue(client, SPEC, "a", settings), WorkQueue(client, SPEC, "b", settings)


async def test_lapsed_lease_is_reclaimed_and_stale_worker_is_refused(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    job = record()
    await store.enqueue(job)
    a, b = workers(redis_client, queue_settings)
    [held] = await a.claim(1.0, 1, idle=True)
    assert await b.reclaim(10) == [], "a live lease must not be taken over"
    await asyncio.sleep(queue_settings.lease_ms / 1000 + 0.1)
    [taken] = await b.reclaim(10)
    assert taken.id == job.id and taken.record.attempts == 2 and taken.record.worker == "b"
    assert await a.emit(held, [("tokens", '{"text":"x"}')]) == EmitOutcome.LOST
    assert await a.renew([held]) == ({job.id}, set())
    assert await a.complete(held, JobStatus.SUCCEEDED, result=JobResult(text="a")) == -1
    assert await b.complete(taken, JobStatus.SUCCEEDED, result=JobResult(text="b")) == 1
    assert await a.complete(held, JobStatus.SUCCEEDED, result=JobResult(text="a")) == 0
    final = await store.get(job.id, "local")
    assert final.status == JobStatus.SUCCEEDED and final.result == JobResult(text="b")
    results = [e for e in await store.events(job.id) if e.type == "result"]
    assert len(results) == 1
    assert await redis_client.xpending(taken.stream, keys.GROUP) == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }


async def test_renewed_lease_is_not_reclaimed(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    await store.enqueue(record())
    a, b = workers(redis_client, queue_settings)
    [held] = await a.claim(1.0, 1, idle=True)
    for _ in range(4):
        await asyncio.sleep(queue_settings.lease_ms / 3000)
        assert await a.renew([held]) == (set(), set())
    assert await b.reclaim(10) == []


async def test_dead_letter_after_max_deliveries(redis_client: aioredis.Redis) -> None:
    settings = QueueSettings(partitions=PARTITIONS, lease_ms=100, max_deliveries=3)
    store = JobStore(redis_client, settings)
    job = record()
    await store.enqueue(job)
    a, _ = workers(redis_client, settings)
    assert len(await a.claim(1.0, 1, idle=True)) == 1
    for _ in range(2):
        await asyncio.sleep(0.15)
        assert len(await a.reclaim(10)) == 1
    await asyncio.sleep(0.15)
    assert await a.reclaim(10) == []
    final = await store.get(job.id, "local")
    assert final.status == JobStatus.FAILED
    assert final.error is not None and "dead-lettered" in final.error and "3 times" in final.error
    [(_, dead)] = await redis_client.xrange(keys.dead(keys.partition_of(job.id)))
    assert dead["job"] == job.id and "dead-lettered" in dead["reason"]
    counters = await store.unit_counters(SPEC)
    assert counters["inflight"] == 0 and counters["queued"] == 0


async def test_cancel_queued_and_running(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    queued, running = record(), record()
    await store.enqueue(running)
    a, _ = workers(redis_client, queue_settings)
    [held] = await a.claim(1.0, 1, idle=True)
    await store.enqueue(queued)
    assert (await store.cancel(queued.id, "local")).status == JobStatus.CANCELLED
    assert await a.claim(1.0, 1, idle=True) == [], "a cancelled job is never delivered"
    channel = keys.cancel_channel(keys.partition_of(running.id))
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    listener = ShardedSubscriber(redis_client, [channel], lambda c, d: heard.put_nowait((c, d)))
    listening = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.subscribed.wait(), 5)
    after = await store.cancel(running.id, "local")
    assert after.status == JobStatus.RUNNING and after.cancel
    assert await asyncio.wait_for(heard.get(), 5) == (channel, running.id)
    listening.cancel()
    await asyncio.gather(listening, return_exceptions=True)
    assert await a.emit(held, [("tokens", '{"text":"x"}')]) == EmitOutcome.CANCELLED
    assert await a.renew([held]) == (set(), {running.id})
    assert await a.complete(held, JobStatus.CANCELLED) == 1
    counters = await store.unit_counters(SPEC)
    assert counters["inflight"] == 0 and counters["queued"] == 0


async def test_idempotency_key_and_ceiling(redis_client: aioredis.Redis) -> None:
    # The ceiling holds per partition (max_queued_units / partitions); one partition here.
    store = JobStore(
        redis_client, QueueSettings(partitions=PARTITIONS, max_queued_units=0.1 * PARTITIONS)
    )
    keyed = store.place("m", "local", "k1")  # a keyed job goes where its key hashes to
    first = record(units=0.06, partition=keyed)
    assert await store.enqueue(first, idempotency_key="k1") == first.id
    again = record(units=0.06, partition=keyed)
    assert await store.enqueue(again, idempotency_key="k1") == first.id
    try:
        await store.enqueue(record(units=0.06, partition=keyed))
    except QueueFull as exc:
        assert exc.retry_after_s > 0
    else:
        raise AssertionError("enqueue past the ceiling must raise QueueFull")
