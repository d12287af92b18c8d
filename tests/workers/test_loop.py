"""The worker loop end to end on the real queue: results, events, budget, errors, cancel."""

from __future__ import annotations

import asyncio
import json
import time

import redis.asyncio as aioredis

from queueing import keys
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobResult, JobStatus, Usage
from queueing.settings import QueueSettings, WorkerSettings
from tests.conftest import PARTITIONS
from tests.workers.support import (
    SPEC,
    job,
    run_burst,
    running_on,
    running_worker,
    status_is,
    wait_until,
)
from workers.engines.scripted import ScriptedEngine, script


async def test_mixed_jobs_complete_with_results_usage_and_ordered_events(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    classes = list(JobClass)
    jobs = [
        job(f"job {i} says hello", max_tokens=3 + i, job_class=classes[i % 3], band=i % 4)
        for i in range(12)
    ]
    for record in jobs:
        await store.enqueue(record)
    engine = ScriptedEngine(token_delay_s=0.005)
    settings = WorkerSettings(unit_budget=0.2, block_ms=200, flush_ms=10_000, flush_tokens=4)
    await run_burst(queue_url, engine, queue_settings, settings)
    assert 2 <= engine.peak_running <= 4, "0.2 units of budget hold at most four 0.05-unit jobs"
    for record in jobs:
        final = await store.get(record.id, "local")
        text = "".join(script(record.prompt, record.params.max_tokens))
        assert final.status == JobStatus.SUCCEEDED and final.attempts == 1
        assert final.result == JobResult(text=text, finish_reason="length")
        n = record.params.max_tokens
        assert final.usage == Usage(prompt_tokens=4, completion_tokens=n, total_tokens=4 + n)
        events = await store.events(record.id)
        kinds = [e.type for e in events]
        assert kinds[:2] == ["status", "status"] and kinds[-2:] == ["result", "status"]
        assert set(kinds[2:-2]) == {"tokens"}
        assert [json.loads(e.data)["status"] for e in events if e.type == "status"] == [
            "queued",
            "running",
            "succeeded",
        ]
        pieces = [json.loads(e.data)["text"] for e in events if e.type == "tokens"]
        assert "".join(pieces) == text
        assert len(pieces) == -(-n // 4), "tokens are coalesced four at a time"
    counters = await store.unit_counters(SPEC)
    assert counters["queued"] == 0 and counters["inflight"] == 0
    assert counters["succeeded"] == len(jobs)


async def test_a_job_that_streams_no_tokens_gets_its_text_in_one_event(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    quiet = job("only the result matters", max_tokens=9).model_copy(update={"stream_tokens": False})
    await store.enqueue(quiet)
    engine = ScriptedEngine(token_delay_s=0.005)
    settings = WorkerSettings(unit_budget=1.0, block_ms=200, flush_ms=10, flush_tokens=1)
    await run_burst(queue_url, engine, queue_settings, settings)
    final = await store.get(quiet.id, "local")
    text = "".join(script(quiet.prompt, 9))
    assert final.status == JobStatus.SUCCEEDED and final.result is not None
    assert final.result.text == text
    assert final.usage is not None and final.usage.completion_tokens == 9
    tokens = [
        json.loads(e.data)["text"] for e in await store.events(quiet.id) if e.type == "tokens"
    ]
    assert tokens == [text], "one token event, with the whole text, at the end"


async def test_heartbeat_reports_load_and_is_removed_on_stop(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=40, units=0.3)
    await store.enqueue(record)
    engine = ScriptedEngine(token_delay_s=0.05)
    async with running_worker(queue_url, engine, queue_settings, grace_s=0) as worker:
        await wait_until(lambda: status_is(store, record.id, JobStatus.RUNNING), 5, "running")

        async def busy() -> bool:
            raw = await redis_client.hget(keys.WORKERS, worker.consumer)
            return raw is not None and json.loads(raw)["in_flight_jobs"] == 1

        await wait_until(busy, 3, "a heartbeat showing the running job")
        status = json.loads(await redis_client.hget(keys.WORKERS, worker.consumer))
        assert status["in_flight_units"] == 0.3 and status["model"] == SPEC.name
        assert status["pid"] > 0 and status["last_progress"] > time.time() - 5
        ttl = await redis_client.ttl(keys.heartbeat(worker.consumer))
        assert 0 < ttl <= 5
    assert await redis_client.exists(keys.heartbeat(worker.consumer)) == 0
    assert await redis_client.hget(keys.WORKERS, worker.consumer) is None


async def test_idle_worker_blocks_and_wakes_on_enqueue(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    engine = ScriptedEngine()
    slow_block = WorkerSettings(unit_budget=1.0, block_ms=5_000, flush_ms=20, flush_tokens=4)
    async with running_worker(queue_url, engine, queue_settings, slow_block):
        await asyncio.sleep(0.3)  # the worker is now blocked on the wake list
        record = job()
        await store.enqueue(record)
        took = await wait_until(
            lambda: status_is(store, record.id, JobStatus.SUCCEEDED), 3, "the job to finish"
        )
    assert took < 1.0, f"an enqueue must wake a blocked worker at once, took {took:.2f}s"


async def test_retryable_error_is_retried_and_fatal_one_fails(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    retry, fatal = job("please [retry] me"), job("please [fail] me")
    for record in (retry, fatal):
        await store.enqueue(record)
    engine = ScriptedEngine(fail_times=1, fail_after=2)
    await run_burst(queue_url, engine, queue_settings)
    again = await store.get(retry.id, "local")
    assert again.status == JobStatus.SUCCEEDED and again.attempts == 2
    assert engine.started.count(retry.id) == 2
    released = [json.loads(e.data) for e in await store.events(retry.id) if e.type == "status"]
    assert {"status": "queued", "reason": "scripted transient failure"} in released
    failed = await store.get(fatal.id, "local")
    assert failed.status == JobStatus.FAILED and failed.attempts == 1
    assert failed.error == "scripted failure: the prompt asked to fail"
    errors = [e for e in await store.events(fatal.id) if e.type == "error"]
    assert len(errors) == 1 and "asked to fail" in errors[0].data
    counters = await store.unit_counters(SPEC)
    assert counters["inflight"] == 0 and counters["queued"] == 0


async def test_unexpected_error_fails_the_job_and_the_worker_goes_on(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    crash, after = job("this will [crash] now"), job("and this one is fine")
    for record in (crash, after):
        await store.enqueue(record)
    await run_burst(queue_url, ScriptedEngine(), queue_settings)
    failed = await store.get(crash.id, "local")
    assert failed.status == JobStatus.FAILED
    assert failed.error == "internal worker error: RuntimeError: scripted crash"
    assert (await store.get(after.id, "local")).status == JobStatus.SUCCEEDED


async def test_cancel_aborts_a_running_job_within_a_second(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    # Renewal every 2 s and one token per 3 s: only the cancel channel can be this fast.
    queue_settings = QueueSettings(partitions=PARTITIONS, lease_ms=6_000, result_ttl_s=600)
    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=5)
    await store.enqueue(record)
    engine = ScriptedEngine(token_delay_s=3.0)
    slow_renew = WorkerSettings(renew_every_ms=2_000, block_ms=500)
    async with running_worker(queue_url, engine, queue_settings, slow_renew):

        async def engine_running() -> bool:
            return record.id in engine.running

        await wait_until(engine_running, 3, "the engine to start the job")
        start = time.monotonic()
        assert (await store.cancel(record.id, "local")).status == JobStatus.RUNNING

        async def engine_stopped() -> bool:
            return record.id not in engine.running

        await wait_until(engine_stopped, 1.0, "the engine request to be aborted", step_s=0.005)
        aborted_in = time.monotonic() - start
        await wait_until(lambda: status_is(store, record.id, JobStatus.CANCELLED), 2, "cancelled")
    assert engine.aborted == [record.id] and aborted_in < 1.0
    assert record.id not in engine.finished
    final = await store.get(record.id, "local")
    assert final.result is None and final.usage is not None
    counters = await store.unit_counters(SPEC)
    assert counters["inflight"] == 0 and counters["cancelled"] == 1


async def test_cancel_before_run_never_reaches_the_engine(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    cancelled, kept = job("cancel me"), job("keep me")
    for record in (cancelled, kept):
        await store.enqueue(record)
    assert (await store.cancel(cancelled.id, "local")).status == JobStatus.CANCELLED
    engine = ScriptedEngine()
    await run_burst(queue_url, engine, queue_settings)
    assert engine.started == [kept.id]
    assert (await store.get(cancelled.id, "local")).status == JobStatus.CANCELLED
    assert (await store.get(kept.id, "local")).status == JobStatus.SUCCEEDED


async def test_stop_lets_a_short_job_finish_within_grace(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    record, later = job(max_tokens=10), job("comes after stop")
    await store.enqueue(record)
    engine = ScriptedEngine(token_delay_s=0.03)
    async with running_worker(queue_url, engine, queue_settings, grace_s=5.0) as worker:
        await wait_until(lambda: status_is(store, record.id, JobStatus.RUNNING), 3, "running")
        worker.stop()
        await store.enqueue(later)
        await wait_until(lambda: status_is(store, record.id, JobStatus.SUCCEEDED), 3, "done")
    assert engine.started == [record.id] and engine.aborted == []
    assert (await store.get(record.id, "local")).attempts == 1
    assert (await store.get(later.id, "local")).status == JobStatus.QUEUED


async def test_renewal_keeps_a_long_job_from_being_reclaimed(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=30)  # 1.5 s of work on a 0.8 s lease
    await store.enqueue(record)
    first, second = ScriptedEngine(token_delay_s=0.05), ScriptedEngine()
    async with running_worker(queue_url, first, queue_settings, consumer="a"):
        await wait_until(lambda: running_on(redis_client, record.id, "a"), 3, "a to run it")
        async with running_worker(queue_url, second, queue_settings, consumer="b"):
            await wait_until(lambda: status_is(store, record.id, JobStatus.SUCCEEDED), 5, "done")
    final = await store.get(record.id, "local")
    assert final.attempts == 1 and final.worker == "a"
    assert first.finished == [record.id] and second.started == []
