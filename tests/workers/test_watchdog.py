"""The hang watchdog: slow steps are not a hang; a stop is caught within the floor, in two steps."""

from __future__ import annotations

import asyncio
import io
import json
import time
from functools import partial

import redis.asyncio as aioredis
from rich.console import Console

from inferq.status import read_status, render
from queueing import keys
from queueing.jobstore import JobStore
from queueing.schemas import JobStatus, SamplingParams
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
from workers.engine import EngineRequest
from workers.engines.scripted import ScriptedEngine
from workers.heartbeat import Load
from workers.loop import Worker
from workers.steps import LARGE_PREFILL
from workers.watchdog import PROBE_PRIORITY, PROBE_PROMPT, Watchdog

NO_PROBES = {"probe_every_s": 600.0}


async def never_stalls(worker: Worker, task: asyncio.Future[None]) -> list[str]:
    """Every stall reason the watchdog gave while ``task`` ran (sampled every 20 ms)."""
    seen: list[str] = []
    while not task.done():
        if worker.watchdog.stalled:
            seen.append(worker.watchdog.stalled)
        await asyncio.sleep(0.02)
    return seen


async def test_steps_slowing_from_10ms_to_3s_stay_healthy(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    """A job that streams no tokens, on an engine whose steps slow down 300-fold, with a
    floor of 1 s: every step is progress, and the limit follows the engine's pace."""
    store = JobStore(redis_client, queue_settings)
    delays = [0.01] * 5 + [0.03] * 3 + [0.1] * 3 + [0.3] * 3 + [1.0] * 3 + [3.0] * 2
    quiet = job("slow down", max_tokens=len(delays)).model_copy(update={"stream_tokens": False})
    await store.enqueue(quiet)
    engine = ScriptedEngine(token_delay_s=delays[0])
    settings = FAST.model_copy(update={"stall_s": 1.0, "hang_s": 2.0, **NO_PROBES})

    async def ramp() -> None:
        while engine.steps.count < len(delays):
            engine.token_delay_s = delays[engine.steps.count]
            await asyncio.sleep(0.005)

    async with running_worker(queue_url, engine, queue_settings, settings) as worker:
        ramping = asyncio.create_task(ramp())
        watching = asyncio.create_task(never_stalls(worker, ramping))
        await asyncio.wait_for(ramping, 30)
        await wait_until(lambda: status_is(store, quiet.id, JobStatus.SUCCEEDED), 5, "done")
        assert await watching == [] and worker.failure is None
    assert engine.steps.pace_s() > 2.9 > settings.hang_s, "steps longer than the hang bound"
    assert (await store.get(quiet.id, "local")).attempts == 1


async def test_engine_that_stops_stepping_is_caught_within_the_floor_in_two_steps(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    """Stop claiming (heartbeat, metric, status say stalled), then give the jobs back."""
    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=400)
    await store.enqueue(record)
    engine = ScriptedEngine(token_delay_s=0.01)
    settings = FAST.model_copy(update={"stall_s": 1.0, "hang_s": 4.0, **NO_PROBES})
    async with worker_on(queue_url, engine, SPEC, queue_settings, settings) as worker:
        task = asyncio.create_task(worker.run())
        await wait_until(lambda: asyncio.sleep(0, engine.steps.count > 20), 5, "steps")
        engine.freeze()
        frozen = time.monotonic()
        stalled_after = await wait_until(
            lambda: asyncio.sleep(0, worker.watchdog.stalled is not None), 5, "a stall verdict"
        )
        assert stalled_after <= settings.stall_s + 0.5, stalled_after
        late = job("arrives while stalled")
        await store.enqueue(late)

        async def says_stalled() -> bool:
            raw = await redis_client.hget(keys.WORKERS, worker.consumer)
            return raw is not None and json.loads(raw)["health"] == "stalled"

        await wait_until(says_stalled, 3, "the heartbeat to say stalled")
        report = await read_status(queue_url, [], queue_settings)
        (shown,) = report["processes"]
        assert shown["health"] == "stalled" and "no step" in shown["stalled"]
        text = io.StringIO()
        render(report, Console(file=text, width=250))
        assert "stalled: engine made no step" in text.getvalue()
        assert worker.metrics.registry.get_sample_value("inferq_worker_stalled", {"model": "m"})
        assert await status_is(store, record.id, JobStatus.RUNNING), "kept while only stalled"
        await wait_until(lambda: asyncio.sleep(0, worker.failure is not None), 10, "a verdict")
        gone_after = time.monotonic() - frozen
        await asyncio.wait_for(task, 10)
    assert settings.hang_s <= gone_after <= settings.hang_s + 1.0, gone_after
    assert worker.failure is not None and "no step" in worker.failure
    after = await store.get(record.id, "local")
    assert after.status == JobStatus.QUEUED and after.attempts == 1, "given back, counted"
    assert (await store.get(late.id, "local")).attempts == 0, "a stalled worker claims nothing"

    healthy = ScriptedEngine()
    async with running_worker(queue_url, healthy, queue_settings):
        for one in (record, late):
            await wait_until(partial(status_is, store, one.id, JobStatus.SUCCEEDED), 10, "done")
    final = await store.get(record.id, "local")
    assert final.attempts == 2 and final.usage is not None
    assert final.usage.completion_tokens == 400


async def test_engine_that_steps_again_is_healthy_again_and_claims(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    first = job(max_tokens=40)
    await store.enqueue(first)
    engine = ScriptedEngine(token_delay_s=0.01)
    settings = FAST.model_copy(update={"stall_s": 0.5, "hang_s": 30.0, **NO_PROBES})
    async with running_worker(queue_url, engine, queue_settings, settings) as worker:
        await wait_until(lambda: asyncio.sleep(0, bool(engine.started)), 5, "the job to start")
        engine.token_delay_s = 2.0  # one step far past the floor: stalled, then a step
        await wait_until(lambda: asyncio.sleep(0, worker.watchdog.stalled is not None), 3, "stall")
        second = job("after the stall")
        await store.enqueue(second)
        engine.token_delay_s = 0.01
        await wait_until(lambda: asyncio.sleep(0, worker.watchdog.stalled is None), 5, "recovery")
        for one in (first, second):
            await wait_until(partial(status_is, store, one.id, JobStatus.SUCCEEDED), 10, "done")
        assert worker.failure is None
    assert (await store.get(second.id, "local")).attempts == 1


async def test_only_worker_keeps_its_jobs_through_unanswered_probes_until_hang_s(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=400)
    await store.enqueue(record)
    engine = ScriptedEngine(token_delay_s=0.01)
    settings = FAST.model_copy(
        update={"stall_s": 0.5, "hang_s": 4.0, "probe_every_s": 0.2, "probe_timeout_s": 0.4}
    )
    async with worker_on(queue_url, engine, SPEC, queue_settings, settings) as worker:
        task = asyncio.create_task(worker.run())
        await wait_until(lambda: asyncio.sleep(0, engine.steps.count > 10), 5, "steps")
        engine.freeze()
        frozen = time.monotonic()
        await asyncio.sleep(2.5)  # several probes sent while stalled got no answer
        assert worker.watchdog.stalled is not None and not task.done()
        assert await status_is(store, record.id, JobStatus.RUNNING)
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - frozen >= settings.hang_s
    assert worker.failure is not None and "no step" in worker.failure


async def test_worker_with_a_healthy_peer_gives_jobs_back_once_a_probe_goes_unanswered(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=200)
    await store.enqueue(record)
    stuck = ScriptedEngine(token_delay_s=0.01)
    settings = FAST.model_copy(
        update={"stall_s": 0.5, "hang_s": 30.0, "probe_every_s": 0.2, "probe_timeout_s": 0.4}
    )
    async with worker_on(queue_url, stuck, SPEC, queue_settings, settings) as worker:
        task = asyncio.create_task(worker.run())
        await wait_until(lambda: asyncio.sleep(0, stuck.steps.count > 10), 5, "steps")
        async with running_worker(queue_url, ScriptedEngine(), queue_settings, settings):
            stuck.freeze()
            frozen = time.monotonic()
            verdict = lambda: asyncio.sleep(0, worker.failure is not None)  # noqa: E731
            await wait_until(verdict, 10, "a verdict")
            released_after = time.monotonic() - frozen
            await asyncio.wait_for(task, 10)
            done = partial(status_is, store, record.id, JobStatus.SUCCEEDED)
            await wait_until(done, 10, "the peer to finish the job")
    assert released_after < 2.0, released_after
    assert worker.failure is not None and "another worker serves the model" in worker.failure
    assert (await store.get(record.id, "local")).attempts == 2


async def test_probe_error_or_a_gone_engine_ends_the_worker_at_once(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    settings = FAST.model_copy(update={"stall_s": 60.0, "hang_s": 600.0, "probe_every_s": 0.2})
    failing = ScriptedEngine(fail_marker=PROBE_PROMPT)
    async with worker_on(queue_url, failing, SPEC, queue_settings, settings) as worker:
        await asyncio.wait_for(worker.run(), 5)
    assert worker.failure is not None and "probe failed" in worker.failure

    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=400)
    await store.enqueue(record)
    dying = ScriptedEngine(token_delay_s=0.01)
    async with worker_on(queue_url, dying, SPEC, queue_settings, settings) as worker:
        task = asyncio.create_task(worker.run())
        await wait_until(lambda: asyncio.sleep(0, bool(dying.started)), 5, "the job to start")
        dying.kill()
        await asyncio.wait_for(task, 5)
    assert worker.failure is not None and "engine is gone" in worker.failure
    after = await store.get(record.id, "local")
    assert after.status == JobStatus.QUEUED and after.attempts == 1, "given back, though alone"


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


async def test_limit_allows_a_large_prefill_at_the_rate_the_engine_has_shown() -> None:
    engine = ScriptedEngine(token_delay_s=0.3)
    settings = WorkerSettings(stall_s=1.0, hang_s=40.0)

    async def no_peers() -> int:
        return 0

    watchdog = Watchdog(engine, lambda: Load(0.0, 0), lambda _: None, settings, peers=no_peers)

    async def run(prompt: str) -> None:
        request = EngineRequest(prompt[:8], prompt, SamplingParams(max_tokens=2))
        async for _ in engine.generate(request):
            pass

    long_prompt = " ".join(["word"] * 2 * LARGE_PREFILL)
    first = asyncio.create_task(run(long_prompt))
    await asyncio.sleep(0.1)
    assert engine.prefill_tokens() == 2 * LARGE_PREFILL
    assert watchdog.limit_s() == settings.hang_s, "a large prefill at a rate not seen yet"
    await first
    per_token = engine.steps.prefill_s_per_token()
    assert per_token is not None and per_token >= 0.3 / (2 * LARGE_PREFILL)
    second = asyncio.create_task(run(" ".join(["again"] + [long_prompt] * 4)))  # 4x the prefill
    await asyncio.sleep(0.1)
    pending = engine.prefill_tokens()
    expected = settings.stall_pace_factor * per_token * pending
    assert pending > 4 * 2 * LARGE_PREFILL and expected > settings.stall_pace_factor * 0.3 * 3.9
    assert watchdog.limit_s() == expected < settings.hang_s
    await second
    assert engine.prefill_tokens() == 0
    assert watchdog.limit_s() == settings.stall_pace_factor * engine.steps.pace_s()
