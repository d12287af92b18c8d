"""A real vLLM-CPU engine starved by a CPU hog is slow, not hung: the worker keeps serving."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest
import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.jobstore import JobStore
from queueing.schemas import JobStatus
from queueing.settings import QueueSettings, WorkerSettings
from tests.conftest import PARTITIONS
from tests.e2e.test_supervised import one_result
from tests.workers.support import job, running_worker, wait_until
from workers.engines.vllm import VllmEngine

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HOG_S = 25.0
JOBS = 32
# A floor far below the default (20 s), so that a false verdict would show within the hog.
WATCHFUL = WorkerSettings(
    unit_budget=100.0, stall_s=3.0, hang_s=30.0, probe_every_s=1.0, probe_timeout_s=3.0
)
PROMPT = " ".join(
    "The lighthouse keeper counted the ships that passed the rocks at night, one by one."
    for _ in range(20)
)


def _hog(until: float) -> None:
    """Spin one core until ``until`` (Unix seconds)."""
    while time.time() < until:
        pass


async def test_worker_under_a_cpu_hog_keeps_serving_without_stepping_aside(
    redis_client: aioredis.Redis,
    queue_url: str,
    vllm_engine: VllmEngine,
    spec: ModelSpec,
) -> None:
    queue = QueueSettings(partitions=PARTITIONS, lease_ms=10_000)
    store = JobStore(redis_client, queue)
    records = [
        job(f"{i}. {PROMPT}", max_tokens=32, units=0.05).model_copy(
            update={"model": spec.name, "stream_tokens": False}
        )
        for i in range(JOBS)
    ]
    ctx = mp.get_context("spawn")
    hogs = [
        ctx.Process(target=_hog, args=(time.time() + HOG_S,)) for _ in range(os.cpu_count() or 2)
    ]
    for hog in hogs:
        hog.start()
    started = time.monotonic()
    stalls: list[str] = []
    paces: list[float] = []
    try:
        async with running_worker(queue_url, vllm_engine, queue, WATCHFUL, spec=spec) as worker:
            steps_before = vllm_engine.steps.count
            for record in records:
                await store.enqueue(record)

            async def all_done() -> bool:
                if worker.watchdog.stalled:
                    stalls.append(worker.watchdog.stalled)
                paces.append(vllm_engine.steps.pace_s())
                finished = [await store.get(r.id, "local") for r in records]
                return all(f.status == JobStatus.SUCCEEDED for f in finished)

            took = await wait_until(all_done, 240, "every job", step_s=0.1)
            hogged = any(h.is_alive() for h in hogs) or time.monotonic() - started < HOG_S
            steps = vllm_engine.steps.count - steps_before
            assert worker.failure is None and stalls == []
    finally:
        for hog in hogs:
            hog.kill()
            hog.join()
    for record in records:
        final = await store.get(record.id, "local")
        assert final.attempts == 1 and one_result(await store.events(record.id))
    print(
        f"\nhog: {len(hogs)} spinning processes for {HOG_S:g}s; {JOBS} jobs done in {took:.1f}s "
        f"(hog still running at the end: {hogged}); {steps} engine steps; longest recent "
        f"step {max(paces):.2f}s; limit floor {WATCHFUL.stall_s:g}s; no stall verdict"
    )
