"""Worker processes killed, frozen and stopped mid-job: every job still gets one outcome."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from queueing import keys
from queueing.events import JobEvent
from queueing.jobstore import JobStore
from queueing.schemas import JobStatus
from queueing.settings import QueueSettings
from tests.conftest import PARTITIONS
from tests.workers.support import (
    SPEC,
    finish,
    job,
    run_burst,
    running_on,
    running_worker,
    spawn_worker,
    status_is,
    wait_until,
)
from workers.engines.scripted import ScriptedEngine, script

pytestmark = pytest.mark.chaos


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker subprocesses started by a test; killed if still alive at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.communicate()


async def running_with_tokens(store: JobStore, job_id: str, consumer: str) -> None:
    """Wait until ``consumer`` runs the job and has streamed some of it."""

    async def check() -> bool:
        if not await running_on(store.client, job_id, consumer):
            return False
        return any(e.type == "tokens" for e in await store.events(job_id))

    await wait_until(check, 10, f"{consumer} to stream the job")


def one_outcome(events: list[JobEvent], text: str) -> None:
    """One result and one terminal status; the last attempt's tokens spell the result."""
    assert [e.type for e in events].count("result") == 1
    assert sum(e.terminal for e in events) == 1 and events[-1].terminal
    last_run = max(i for i, e in enumerate(events) if '"running"' in e.data)
    streamed = [json.loads(e.data)["text"] for e in events[last_run:] if e.type == "tokens"]
    assert "".join(streamed) == text


async def test_sigkilled_worker_job_is_reclaimed_and_completed_once(
    redis_client: aioredis.Redis,
    queue_url: str,
    queue_settings: QueueSettings,
    procs: list[subprocess.Popen[str]],
) -> None:
    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=30)
    await store.enqueue(record)
    procs.append(spawn_worker(queue_url, "proc-a", queue_settings, token_delay_s=0.1))
    await running_with_tokens(store, record.id, "proc-a")
    procs[0].kill()
    procs[0].wait()
    killed_at = time.monotonic()
    engine = ScriptedEngine(token_delay_s=0.005)
    async with running_worker(queue_url, engine, queue_settings, consumer="b"):
        await wait_until(lambda: running_on(redis_client, record.id, "b"), 5, "b to reclaim")
        taken_after = time.monotonic() - killed_at
        await wait_until(lambda: status_is(store, record.id, JobStatus.SUCCEEDED), 5, "done")
    assert taken_after > 0.5, "a lease is only taken over once it lapses"
    final = await store.get(record.id, "local")
    assert final.attempts == 2 and final.worker == "b"
    text = "".join(script(record.prompt, 30))
    assert final.result is not None and final.result.text == text
    one_outcome(await store.events(record.id), text)
    counters = await store.unit_counters(SPEC)
    assert counters["inflight"] == 0 and counters["succeeded"] == 1


async def test_duplicate_delivery_has_one_outcome_and_stale_worker_aborts(
    redis_client: aioredis.Redis,
    queue_url: str,
    queue_settings: QueueSettings,
    procs: list[subprocess.Popen[str]],
) -> None:
    store = JobStore(redis_client, queue_settings)
    record = job(max_tokens=30)
    await store.enqueue(record)
    stale = spawn_worker(queue_url, "proc-a", queue_settings, token_delay_s=0.1)
    procs.append(stale)
    await running_with_tokens(store, record.id, "proc-a")
    stale.send_signal(signal.SIGSTOP)
    engine = ScriptedEngine(token_delay_s=0.05)
    async with running_worker(queue_url, engine, queue_settings, consumer="b"):
        await wait_until(lambda: running_on(redis_client, record.id, "b"), 5, "b to reclaim")
        stale.send_signal(signal.SIGCONT)  # both workers now run the same job
        await wait_until(lambda: status_is(store, record.id, JobStatus.SUCCEEDED), 5, "done")
    stale.send_signal(signal.SIGTERM)
    rc, out, err = finish(stale)
    assert rc == 0, err
    seen = json.loads(out.splitlines()[-1])
    assert record.id in seen["aborted"] and record.id not in seen["finished"]
    assert f"job {record.id}: emit refused" in err or f"job {record.id}: lease lost" in err
    assert engine.finished == [record.id]
    final = await store.get(record.id, "local")
    assert final.worker == "b" and final.attempts == 2
    one_outcome(await store.events(record.id), "".join(script(record.prompt, 30)))


async def test_job_whose_workers_keep_dying_is_dead_lettered(
    redis_client: aioredis.Redis, queue_url: str, procs: list[subprocess.Popen[str]]
) -> None:
    settings = QueueSettings(
        partitions=PARTITIONS, lease_ms=600, max_deliveries=2, result_ttl_s=600
    )
    store = JobStore(redis_client, settings)
    record = job(max_tokens=50)
    await store.enqueue(record)
    for name in ("proc-a", "proc-b"):
        proc = spawn_worker(queue_url, name, settings, token_delay_s=0.1)
        procs.append(proc)
        await running_with_tokens(store, record.id, name)
        proc.kill()
        proc.wait()
    engine = ScriptedEngine()
    await run_burst(queue_url, engine, settings, timeout_s=10)
    assert engine.started == [], "a dead-lettered job never reaches the engine again"
    final = await store.get(record.id, "local")
    assert final.status == JobStatus.FAILED and final.attempts == 3
    assert final.error is not None and "dead-lettered: delivered 2 times" in final.error
    [(_, dead)] = await redis_client.xrange(keys.dead(keys.partition_of(record.id)))
    assert dead["job"] == record.id and dead["reason"] == final.error
    counters = await store.unit_counters(SPEC)
    assert counters["inflight"] == 0 and counters["queued"] == 0


async def test_sigterm_releases_the_running_job_and_stops_claiming(
    redis_client: aioredis.Redis,
    queue_url: str,
    queue_settings: QueueSettings,
    procs: list[subprocess.Popen[str]],
) -> None:
    store = JobStore(redis_client, queue_settings)
    long = job(max_tokens=60)
    await store.enqueue(long)
    proc = spawn_worker(queue_url, "proc-a", queue_settings, token_delay_s=0.1, grace_s=1.0)
    procs.append(proc)
    await running_with_tokens(store, long.id, "proc-a")
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.2)
    later = job("enqueued after the signal")
    await store.enqueue(later)
    rc, out, err = finish(proc)
    stopped_in = time.monotonic() - start
    assert rc == 0, err
    assert stopped_in < 4.0, f"grace is 1 s, but the worker took {stopped_in:.1f}s to exit"
    assert json.loads(out.splitlines()[-1])["started"] == [long.id], "no claims after SIGTERM"
    released = await store.get(long.id, "local")
    assert released.status == JobStatus.QUEUED and released.attempts == 0
    statuses = [json.loads(e.data) for e in await store.events(long.id) if e.type == "status"]
    assert statuses[-1] == {"status": "queued", "reason": "worker shutting down"}
    assert (await store.get(later.id, "local")).status == JobStatus.QUEUED
    assert await redis_client.hget(keys.WORKERS, "proc-a") is None
    engine = ScriptedEngine()
    await run_burst(queue_url, engine, queue_settings)
    for record in (long, later):
        final = await store.get(record.id, "local")
        assert final.status == JobStatus.SUCCEEDED and final.attempts == 1
        assert final.worker is not None and final.worker != "proc-a"
