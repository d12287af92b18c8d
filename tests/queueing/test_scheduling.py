"""Claim order: class first, cheaper band next, ageing so nothing starves; bands by cost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from queueing import keys
from queueing.admission import Admission
from queueing.catalogue import Catalogue, ModelSpec
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from queueing.settings import QueueSettings
from queueing.workqueue import BatchRoom, WorkQueue
from tests.conftest import PARTITIONS
from tests.queueing.records import claim_all, record

SPEC = ModelSpec(name="m", path=Path("."), context_length=100, prompt_weight=1, output_weight=1)


async def test_class_then_band_order_without_ageing(redis_client: aioredis.Redis) -> None:
    settings = QueueSettings(partitions=PARTITIONS, ageing_ms=10**9)
    store = JobStore(redis_client, settings)
    batch = record(job_class=JobClass.BATCH, band=0)
    dear = record(job_class=JobClass.INTERACTIVE, band=3, units=2.0)
    cheap = record(job_class=JobClass.INTERACTIVE, band=0)
    standard = record(job_class=JobClass.STANDARD, band=1)
    for job in (batch, dear, cheap, standard):
        await store.enqueue(job)
    wq = WorkQueue(redis_client, SPEC, "w", settings)
    order = [c.id for c in await claim_all(wq, 100.0, 10)]
    assert order == [cheap.id, dear.id, standard.id, batch.id]


async def test_ageing_lets_standard_through_constant_interactive_load(
    redis_client: aioredis.Redis,
) -> None:
    settings = QueueSettings(partitions=PARTITIONS, ageing_ms=50)
    store = JobStore(redis_client, settings)
    wq = WorkQueue(redis_client, SPEC, "w", settings)
    standard = record(job_class=JobClass.STANDARD)
    await store.enqueue(standard)
    claimed = await _claims_under_interactive_load(store, wq, standard, rounds=200)
    assert standard.id in claimed, "the standard job starved"
    assert claimed.index(standard.id) > 0, "interactive work should go first while it is fresh"
    backlog = int((await store.unit_counters(SPEC))["n:interactive:0"])
    assert backlog > 0, "interactive load was still queued when the standard job ran"


async def test_batch_ages_within_its_class_and_never_above_waiting_work(
    redis_client: aioredis.Redis,
) -> None:
    """A batch backlog, however old, never overtakes waiting interactive or standard work
    (ageing lifts it only within the batch class); among batch jobs the old dear one goes
    before a fresh cheap one."""
    settings = QueueSettings(partitions=PARTITIONS, ageing_ms=50)
    store = JobStore(redis_client, settings)
    wq = WorkQueue(redis_client, SPEC, "w", settings)
    old_dear = record(job_class=JobClass.BATCH, band=3)
    await store.enqueue(old_dear)
    claimed = await _claims_under_interactive_load(store, wq, old_dear, rounds=60)
    assert old_dear.id not in claimed, "aged batch work overtook waiting interactive work"
    partition = keys.partition_of(old_dear.id)
    standard = record(job_class=JobClass.STANDARD, band=3, partition=partition)
    fresh_cheap = record(job_class=JobClass.BATCH, band=0, partition=partition)
    for job in (standard, fresh_cheap):
        await store.enqueue(job)
    rest = [c.id for c in await claim_all(wq, 100.0, 1000)]
    assert rest[-3:] == [standard.id, old_dear.id, fresh_cheap.id]


async def _claims_under_interactive_load(
    store: JobStore, wq: WorkQueue, watched: JobRecord, rounds: int
) -> list[str]:
    """Interactive arrivals never stop (two per claim of one job, in the partition of
    ``watched``: this queue has no wake notifications to learn of others); stops once
    ``watched`` is claimed. Returns the claimed ids in order."""
    claimed: list[str] = []
    partition = keys.partition_of(watched.id)
    for _ in range(rounds):
        for _ in range(2):
            await store.enqueue(record(job_class=JobClass.INTERACTIVE, partition=partition))
        claimed += [c.id for c in await wq.claim(1.0, 1, idle=True)]
        if watched.id in claimed:
            break
        await asyncio.sleep(0.005)
    return claimed


async def test_batch_room_caps_batch_claims_only(redis_client: aioredis.Redis) -> None:
    settings = QueueSettings(partitions=PARTITIONS, ageing_ms=10**9)
    store = JobStore(redis_client, settings)
    batch = [record(job_class=JobClass.BATCH, units=0.1, partition=0) for _ in range(4)]
    standard = record(job_class=JobClass.STANDARD, units=0.1, partition=0)
    for job in (*batch, standard):
        await store.enqueue(job)
        await asyncio.sleep(0.002)  # distinct milliseconds: FIFO is checkable
    wq = WorkQueue(redis_client, SPEC, "w", settings)
    first = await wq.claim(1.0, 10, idle=False, batch_room=BatchRoom(0.25, 10))
    assert [c.id for c in first] == [standard.id, batch[0].id, batch[1].id]
    assert await wq.claim(1.0, 10, idle=False, batch_room=BatchRoom(0.05, 10)) == []
    one = await wq.claim(1.0, 10, idle=False, batch_room=BatchRoom(10.0, 1))
    assert [c.id for c in one] == [batch[2].id], "one batch slot left: one batch job"
    rest = await wq.claim(1.0, 10, idle=False)
    assert [c.id for c in rest] == [batch[3].id]


async def test_room_limits_claims_and_idle_worker_takes_big_job(
    redis_client: aioredis.Redis,
) -> None:
    settings = QueueSettings(partitions=PARTITIONS, ageing_ms=10**9)
    store = JobStore(redis_client, settings)
    big = record(units=50.0, band=3)
    await store.enqueue(big)
    wq = WorkQueue(redis_client, SPEC, "w", settings)
    assert await wq.claim(10.0, 4, idle=False) == []
    [got] = await wq.claim(10.0, 4, idle=True)
    assert got.id == big.id and got.record.status == JobStatus.RUNNING


async def test_bands_route_as_estimated(
    redis_client: aioredis.Redis, catalogue: Catalogue, spec: ModelSpec
) -> None:
    admission = Admission(catalogue, spec.name)
    store = JobStore(redis_client, QueueSettings(partitions=PARTITIONS))
    small = admission.admit(
        tenant="local",
        partition=0,
        model=None,
        prompt="Hi",
        messages=None,
        params=SamplingParams(max_tokens=8),
        job_class=JobClass.STANDARD,
    )
    large = admission.admit(
        tenant="local",
        partition=0,
        model=None,
        prompt="word " * 3000,
        messages=None,
        params=SamplingParams(max_tokens=2000),
        job_class=JobClass.STANDARD,
    )
    assert small.band == 0 and large.band == spec.bands - 1
    assert small.estimated_units < spec.band_edges[0] < spec.band_edges[-1] < large.estimated_units
    for job in (small, large):
        await store.enqueue(job)
        waiting = keys.waiting(spec.name, 0, JobClass.STANDARD, job.band)
        assert [m.rsplit(":", 1)[1] for m in await redis_client.zrange(waiting, 0, -1)] == [job.id]
