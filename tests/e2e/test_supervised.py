"""`inferq up` with two real vLLM-CPU workers: a frozen worker, a killed one and a worker whose
engine core is frozen lose nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial

import httpx
import psutil
import pytest
import redis.asyncio as aioredis

from queueing import keys
from queueing.events import JobEvent
from queueing.jobstore import JobStore
from queueing.schemas import JobStatus
from queueing.settings import QueueSettings
from tests.conftest import PARTITIONS, free_port
from tests.workers.support import status_is, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(600)]

LEASE_MS = 6_000
STALL_S = 3.0  # the watchdog's floor; a probe unanswered for PROBE_TIMEOUT_S while stalled
PROBE_TIMEOUT_S = 3.0
COUNT = {"prompt": "Count from 1 to 1000, separated by commas.", "params": {"max_tokens": 120}}


@contextlib.contextmanager
def inferq_up(url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``inferq up --workers 2`` on the test's server; every process is gone afterwards."""
    env = {
        **os.environ,
        "INFERQ_REDIS__URL": url,
        "INFERQ_API__PORT": str(port),
        "INFERQ_QUEUE__LEASE_MS": str(LEASE_MS),
        "INFERQ_WORKER__UNIT_BUDGET": "0.3",  # two of these jobs per worker
        "INFERQ_WORKER__STALL_S": str(STALL_S),
        "INFERQ_WORKER__PROBE_EVERY_S": "1",
        "INFERQ_WORKER__PROBE_TIMEOUT_S": str(PROBE_TIMEOUT_S),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferq", "up", "--workers", "2"], env=env, start_new_session=True
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything the supervisor left behind


async def live_workers(client: aioredis.Redis) -> dict[str, int]:
    """Consumer name -> pid of every LLM worker (not the preprocess tier's) whose heartbeat
    is alive."""
    live = {}
    for name, raw in (await client.hgetall(keys.WORKERS)).items():
        entry = json.loads(raw)
        if entry.get("model") and await client.exists(keys.heartbeat(name)):
            live[name] = int(entry["pid"])
    return live


async def owners(store: JobStore, ids: list[str]) -> dict[str, str]:
    """Job id -> the worker running it, for running jobs that have streamed tokens."""
    found = {}
    for job_id in ids:
        worker = await store.client.hget(keys.job(job_id), "worker")
        streamed = any(e.type == "tokens" for e in await store.events(job_id))
        if worker and streamed and await status_is(store, job_id, JobStatus.RUNNING):
            found[job_id] = worker
    return found


async def all_succeeded(store: JobStore, ids: list[str]) -> bool:
    """Whether every one of the jobs succeeded."""
    return all([await status_is(store, j, JobStatus.SUCCEEDED) for j in ids])


def one_result(events: list[JobEvent]) -> bool:
    """Exactly one result and one terminal status."""
    terminal = [e for e in events if e.terminal]
    return [e.type for e in events].count("result") == 1 and len(terminal) == 1


async def test_frozen_worker_jobs_finish_elsewhere_and_killed_worker_is_restarted(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    store = JobStore(redis_client, QueueSettings(partitions=PARTITIONS, lease_ms=LEASE_MS))
    port = free_port(18000)
    base_url = f"http://127.0.0.1:{port}"
    with inferq_up(queue_url, port):
        async with httpx.AsyncClient(base_url=base_url) as http:
            await _scenarios(store, redis_client, http)


async def _scenarios(
    store: JobStore, redis_client: aioredis.Redis, http: httpx.AsyncClient
) -> None:
    """Both workers up; then a frozen worker, then a killed one."""

    async def two_workers() -> bool:
        return len(await live_workers(redis_client)) == 2

    await wait_until(two_workers, 240, "two workers to start their engines", step_s=1)

    # SIGSTOP a worker while it has work: its jobs complete on the other within 30 s.
    ids = [(await http.post("/v1/jobs", json=COUNT)).json()["id"] for _ in range(4)]

    async def both_busy() -> bool:
        return len(set((await owners(store, ids)).values())) == 2

    await wait_until(both_busy, 60, "both workers to stream jobs", step_s=0.2)
    pids = await live_workers(redis_client)
    frozen = next(iter((await owners(store, ids)).values()))
    its_jobs = [j for j, w in (await owners(store, ids)).items() if w == frozen]
    os.kill(pids[frozen], signal.SIGSTOP)
    try:
        await wait_until(partial(all_succeeded, store, its_jobs), 30, "the other to take over")
    finally:
        os.kill(pids[frozen], signal.SIGCONT)
    await wait_until(partial(all_succeeded, store, ids), 60, "every job")
    for job_id in ids:
        assert one_result(await store.events(job_id))
    for job_id in its_jobs:
        assert (await store.get(job_id, "local")).attempts == 2

    # SIGKILL the worker mid-generation (the other one frozen, so only a restart can
    # finish the job): the supervisor restarts it and the job completes once. The thawed
    # worker's heartbeat lapsed while it was stopped: wait for its next beat first.
    await wait_until(two_workers, 30, "the thawed worker to beat again", step_s=0.2)
    job_id = (await http.post("/v1/jobs", json=COUNT)).json()["id"]
    await wait_until(lambda: _streamed(store, job_id), 60, "the job to stream", step_s=0.2)
    victim = (await owners(store, [job_id]))[job_id]
    pids = await live_workers(redis_client)
    bystander = next(pid for name, pid in pids.items() if name != victim)
    os.kill(bystander, signal.SIGSTOP)
    try:
        os.kill(pids[victim], signal.SIGKILL)

        async def restarted() -> bool:
            return any(
                pid not in pids.values() for pid in (await live_workers(redis_client)).values()
            )

        await wait_until(restarted, 240, "the supervisor to restart the worker", step_s=1)
        await wait_until(
            lambda: status_is(store, job_id, JobStatus.SUCCEEDED), 120, "the job", step_s=0.5
        )
    finally:
        os.kill(bystander, signal.SIGCONT)
    final = await store.get(job_id, "local")
    assert final.attempts == 2 and final.result is not None and final.result.text
    assert one_result(await store.events(job_id))

    # SIGSTOP the engine core of a busy worker, not the worker: it says stalled (and claims
    # nothing) within the floor, gives its jobs back, and they finish on the other worker.
    await wait_until(two_workers, 240, "two workers again", step_s=1)
    ids = [(await http.post("/v1/jobs", json=COUNT)).json()["id"] for _ in range(4)]
    await wait_until(both_busy, 60, "both workers to stream jobs", step_s=0.2)
    pids = await live_workers(redis_client)
    running = await owners(store, ids)
    stuck = next(iter(running.values()))
    its_jobs = [j for j, w in running.items() if w == stuck]
    core = engine_core(pids[stuck])
    os.kill(core, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        await wait_until(partial(says_stalled, redis_client, stuck), 30, "a stall", step_s=0.1)
        stalled_s = time.monotonic() - frozen
        await wait_until(partial(all_succeeded, store, its_jobs), 30, "its jobs", step_s=0.2)
        finished_s = time.monotonic() - frozen
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(core, signal.SIGCONT)
    print(
        f"\nengine core SIGSTOP: worker said stalled after {stalled_s:.1f}s "
        f"(floor {STALL_S:g}s); its {len(its_jobs)} jobs finished elsewhere after {finished_s:.1f}s"
    )
    assert stalled_s <= STALL_S + 2.5, "within the floor (plus a tick and a heartbeat)"
    assert finished_s <= 30
    for job_id in its_jobs:
        final = await store.get(job_id, "local")
        assert final.worker != stuck and final.status == JobStatus.SUCCEEDED
        assert one_result(await store.events(job_id))


def engine_core(worker_pid: int) -> int:
    """The pid of the worker's vLLM engine core process (titled ``VLLM::EngineCore``)."""
    for child in psutil.Process(worker_pid).children(recursive=True):
        if "EngineCore" in " ".join(child.cmdline()):
            return child.pid
    raise AssertionError(f"worker {worker_pid} has no EngineCore process")


async def says_stalled(client: aioredis.Redis, worker: str) -> bool:
    """Whether the worker's heartbeat entry says its engine is stalled."""
    raw = await client.hget(keys.WORKERS, worker)
    return raw is not None and json.loads(raw).get("health") == "stalled"


async def _streamed(store: JobStore, job_id: str) -> bool:
    return bool(await owners(store, [job_id]))
