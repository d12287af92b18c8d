"""What a worker runs first: class, then cheaper band, with ageing; bands by real cost."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as aioredis

from queueing import cost, keys
from queueing.admission import Admission
from queueing.catalogue import Catalogue, ModelSpec
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from queueing.settings import QueueSettings, WorkerSettings
from tests.conftest import PARTITIONS
from tests.workers.support import SPEC, job, run_burst, running_worker, status_is, wait_until
from workers.engines.scripted import ScriptedEngine

ONE_AT_A_TIME = WorkerSettings(unit_budget=0.05, block_ms=200, flush_ms=20, flush_tokens=4)


async def test_class_then_cheaper_band_without_ageing(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    settings = QueueSettings(partitions=PARTITIONS, ageing_ms=10**9, lease_ms=5_000)
    store = JobStore(redis_client, settings)
    batch = job(job_class=JobClass.BATCH)
    standard = job(job_class=JobClass.STANDARD, band=2, units=1.0)
    dear = job(job_class=JobClass.INTERACTIVE, band=3, units=3.0)
    cheap = job(job_class=JobClass.INTERACTIVE, band=0)
    for record in (batch, standard, dear, cheap):
        await store.enqueue(record)
    engine = ScriptedEngine()
    await run_burst(queue_url, engine, settings, ONE_AT_A_TIME)
    assert engine.started == [cheap.id, dear.id, standard.id, batch.id]
    assert engine.peak_running == 1, "an over-budget job runs only on an idle worker"


@pytest.mark.parametrize("job_class", [JobClass.STANDARD, JobClass.BATCH])
async def test_ageing_lets_standard_but_not_batch_through_never_ending_interactive_load(
    redis_client: aioredis.Redis, queue_url: str, job_class: JobClass
) -> None:
    """Ageing lifts standard work past a never-ending interactive load; batch work ages
    only within its class, so it waits until the interactive load stops."""
    settings = QueueSettings(partitions=PARTITIONS, ageing_ms=50, lease_ms=5_000)
    store = JobStore(redis_client, settings)
    watched = job("the watched job", job_class=job_class)
    await store.enqueue(watched)
    produced: list[str] = []
    backlog_seen: list[int] = []

    async def produce() -> None:  # keeps at least two interactive jobs queued at all times
        while True:
            queued = int((await store.unit_counters(SPEC)).get("n:interactive:0", 0))
            backlog_seen.append(queued)
            for _ in range(max(0, 3 - queued)):
                record = job("urgent", max_tokens=2, job_class=JobClass.INTERACTIVE)
                produced.append(record.id)  # first: a cancel may land while it is enqueued
                await store.enqueue(record)
            await asyncio.sleep(0.005)

    engine = ScriptedEngine(token_delay_s=0.01)
    producer = asyncio.create_task(produce())
    try:
        async with running_worker(queue_url, engine, settings, ONE_AT_A_TIME):
            if job_class is JobClass.BATCH:
                await asyncio.sleep(1.5)  # thirty ageing periods
                assert await status_is(store, watched.id, JobStatus.QUEUED)
                assert len(engine.started) >= 10, "interactive work kept running"
                producer.cancel()
            await wait_until(
                lambda: status_is(store, watched.id, JobStatus.SUCCEEDED), 10, "the watched job"
            )
            backlog = int((await store.unit_counters(SPEC))["n:interactive:0"])
            assert producer.done() is (job_class is JobClass.BATCH)
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
    assert min(backlog_seen[1:]) >= 1, "the interactive queue never ran dry"
    position = engine.started.index(watched.id)
    assert position >= 3, "fresh interactive work went first"
    assert set(engine.started[:position]) <= set(produced)
    if job_class is JobClass.STANDARD:
        assert backlog > 0, "interactive work was still queued when the standard job finished"
    else:
        assert backlog == 0, "the batch job ran only once no interactive work waited"


async def test_bands_route_as_estimated_and_cheaper_runs_first(
    redis_client: aioredis.Redis, queue_url: str, catalogue: Catalogue, spec: ModelSpec
) -> None:
    settings = QueueSettings(partitions=PARTITIONS, ageing_ms=10**9, lease_ms=5_000)
    admission = Admission(catalogue, spec.name)
    store = JobStore(redis_client, settings)
    admitted = {
        name: admission.admit(
            tenant="local",
            partition=0,
            model=None,
            prompt=prompt,
            messages=None,
            params=SamplingParams(max_tokens=max_tokens),
            job_class=JobClass.STANDARD,
        )
        for name, prompt, max_tokens in (
            ("large", "many words here " * 800, 1500),
            ("small", "Hi there", 8),
        )
    }
    tokenizer = admission.tokenizer(spec)
    for record in admitted.values():
        expected = cost.estimate(
            spec,
            prompt_tokens=tokenizer.count(record.prompt),
            max_tokens=record.params.max_tokens,
        )
        assert (record.band, record.estimated_units) == (expected.band, expected.units)
        await store.enqueue(record)
        waiting = keys.waiting(spec.name, 0, JobClass.STANDARD, record.band)
        assert await redis_client.zcard(waiting) == 1
    small, large = admitted["small"], admitted["large"]
    assert small.band == 0 and large.band == spec.bands - 1
    engine = ScriptedEngine()
    budget = WorkerSettings(unit_budget=0.01, block_ms=200, flush_ms=20, flush_tokens=64)
    await run_burst(queue_url, engine, settings, budget, spec=spec)
    assert engine.started == [small.id, large.id], "the cheaper band goes first"
    for record in (small, large):
        final = await store.get(record.id, "local")
        assert final.status == JobStatus.SUCCEEDED
        assert final.usage is not None
        assert final.usage.completion_tokens == record.params.max_tokens


async def test_a_backlog_waits_in_the_queue_not_in_the_engine(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    """With its engine's slots taken (one kept for the probe), the worker claims nothing, so
    cheaper work that lands later still overtakes dearer work that landed first."""
    settings = QueueSettings(partitions=PARTITIONS, ageing_ms=10**9, lease_ms=5_000)
    store = JobStore(redis_client, settings)
    engine = ScriptedEngine(token_delay_s=0.05, slots=3)
    roomy = WorkerSettings(unit_budget=100.0, block_ms=200, flush_ms=20, flush_tokens=4)
    first = [job(band=2, units=1.0, max_tokens=10) for _ in range(2)]
    dear = [job(band=2, units=1.0, max_tokens=2) for _ in range(3)]
    cheap = [job(band=0, max_tokens=2) for _ in range(3)]
    async with running_worker(queue_url, engine, settings, roomy):
        for record in first:
            await store.enqueue(record)
        await wait_until(lambda: _started(engine, first), 5, "the first two jobs to start")
        for record in (*dear, *cheap):
            await store.enqueue(record)
        await asyncio.sleep(0.2)
        queued = [await status_is(store, r.id, JobStatus.QUEUED) for r in (*dear, *cheap)]
        assert all(queued), "a worker whose slots are taken claimed more"
        everything = (*first, *dear, *cheap)
        await wait_until(lambda: _all_succeeded(store, everything), 10, "every job to finish")
    later = [rid for rid in engine.started if not rid.startswith("probe-")][2:]
    # Within a group the order is free: jobs of one millisecond in different partitions.
    assert set(later[:3]) == {r.id for r in cheap} and set(later[3:]) == {r.id for r in dear}
    assert engine.peak_running <= engine.slots


async def _started(engine: ScriptedEngine, records: list[JobRecord]) -> bool:
    return {r.id for r in records} <= set(engine.started)


async def _all_succeeded(store: JobStore, records: tuple[JobRecord, ...]) -> bool:
    return all([await status_is(store, r.id, JobStatus.SUCCEEDED) for r in records])
