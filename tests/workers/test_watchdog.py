"""The hang watchdog: a stalled engine or a failed probe makes the worker step aside."""

from __future__ import annotations

import asyncio
from functools import partial

import redis.asyncio as aioredis

from queueing.jobstore import JobStore
from queueing.schemas import JobStatus
from queueing.settings import QueueSettings, WorkerSettings
from tests.workers.support import (
    FAST,
    SPEC,
    job,
    running_worker,
    status_is,
    wait_until,
    worker_on,
)
from workers.engines.scripted import ScriptedEngine
from workers.watchdog import PROBE_PRIORITY


async def test_engine_that_stalls_with_work_has_its_jobs_given_back(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=400)
    await store.enqueue(record)
    stuck = ScriptedEngine(token_delay_s=0.01)
    watchful = FAST.model_copy(update={"stall_s": 1.0, "probe_every_s": 60.0})
    async with worker_on(queue_url, stuck, SPEC, queue_settings, watchful) as worker:
        task = asyncio.create_task(worker.run())
        await wait_until(lambda: asyncio.sleep(0, bool(stuck.started)), 5, "the job to start")
        stuck.freeze()
        await asyncio.wait_for(task, 10)
    assert worker.failure is not None and "no progress" in worker.failure
    after = await store.get(record.id, "local")
    assert after.status == JobStatus.QUEUED and after.attempts == 1, "given back, counted"

    healthy = ScriptedEngine()
    async with running_worker(queue_url, healthy, queue_settings):
        await wait_until(lambda: status_is(store, record.id, JobStatus.SUCCEEDED), 10, "done")
    final = await store.get(record.id, "local")
    assert final.attempts == 2 and final.usage is not None
    assert final.usage.completion_tokens == 400


async def test_failed_probe_stops_an_idle_worker(
    queue_url: str, queue_settings: QueueSettings
) -> None:
    engine = ScriptedEngine()
    settings = FAST.model_copy(
        update={"stall_s": 60.0, "probe_every_s": 0.2, "probe_timeout_s": 0.5}
    )
    async with worker_on(queue_url, engine, SPEC, queue_settings, settings) as worker:
        task = asyncio.create_task(worker.run())
        await wait_until(lambda: asyncio.sleep(0, worker.watchdog.probes_ok >= 2), 5, "probes")
        assert not task.done()
        engine.freeze()
        await asyncio.wait_for(task, 5)
    assert worker.failure is not None and "probe" in worker.failure


async def test_busy_healthy_worker_is_left_alone(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    records = [job(f"job {i}", max_tokens=40) for i in range(6)]
    for record in records:
        await store.enqueue(record)
    engine = ScriptedEngine(token_delay_s=0.02)
    settings = WorkerSettings(
        unit_budget=0.1, stall_s=0.5, probe_every_s=0.2, probe_timeout_s=0.5, flush_tokens=8
    )
    async with running_worker(queue_url, engine, queue_settings, settings) as worker:
        for record in records:
            done = partial(status_is, store, record.id, JobStatus.SUCCEEDED)
            await wait_until(done, 20, "every job")
        assert worker.failure is None and worker.watchdog.probes_ok >= 3
    probes = [rid for rid in engine.finished if rid.startswith("probe-")]
    assert len(probes) == worker.watchdog.probes_ok and PROBE_PRIORITY < 0


async def test_probe_answers_count_as_progress_for_jobs_that_stream_no_tokens(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    """A job without token events runs 1.6 s, three times ``stall_s``: not a stall."""
    store = JobStore(redis_client, queue_settings)
    quiet = job("a long quiet job", max_tokens=80).model_copy(update={"stream_tokens": False})
    await store.enqueue(quiet)
    engine = ScriptedEngine(token_delay_s=0.02)
    settings = WorkerSettings(unit_budget=0.1, stall_s=0.5, probe_every_s=0.1, probe_timeout_s=0.5)
    async with running_worker(queue_url, engine, queue_settings, settings) as worker:
        done = partial(status_is, store, quiet.id, JobStatus.SUCCEEDED)
        await wait_until(done, 20, "the quiet job")
        assert worker.failure is None and worker.watchdog.probes_ok >= 5
