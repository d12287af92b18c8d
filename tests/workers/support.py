"""Helpers for worker-loop tests: job records, an in-process worker, worker subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from preprocess.pool import process_pool
from queueing import keys
from queueing.catalogue import Catalogue, ModelSpec
from queueing.connection import connect
from queueing.files import Files
from queueing.filestore import open_storage
from queueing.images import PreparedImages
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from queueing.settings import QueueSettings, Settings, WorkerSettings
from tests.conftest import PARTITIONS
from workers.engine import Engine
from workers.loop import Worker
from workers.preprocess_worker import PreprocessWorker

SPEC = ModelSpec(name="m", path=Path("."), context_length=4096, prompt_weight=1, output_weight=1)
ROOT = Path(__file__).resolve().parents[2]
FAST = WorkerSettings(
    unit_budget=1.0, block_ms=500, renew_every_ms=250, flush_ms=20, flush_tokens=4
)


def job(
    prompt: str = "alpha beta gamma",
    *,
    max_tokens: int = 6,
    job_class: JobClass = JobClass.STANDARD,
    band: int = 0,
    units: float = 0.05,
) -> JobRecord:
    """A queued job for model ``m`` with the given prompt, class, band and cost."""
    return JobRecord(
        id=keys.new_job_id(random.randrange(PARTITIONS)),
        model=SPEC.name,
        status=JobStatus.QUEUED,
        job_class=job_class,
        estimated_units=units,
        created_at=time.time(),
        tenant="local",
        band=band,
        prompt_tokens=len(prompt.split()),
        prompt=prompt,
        params=SamplingParams(max_tokens=max_tokens),
    )


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, step_s: float = 0.02
) -> float:
    """Poll ``check`` until it holds; returns the seconds it took, fails after ``timeout_s``."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(step_s)
    return time.monotonic() - start


async def status_is(store: JobStore, job_id: str, *statuses: JobStatus) -> bool:
    """True when the job's status is one of ``statuses``."""
    return (await store.get(job_id, "local")).status in statuses


@contextlib.asynccontextmanager
async def running_worker(
    url: str,
    engine: Engine,
    queue_settings: QueueSettings,
    worker_settings: WorkerSettings = FAST,
    *,
    spec: ModelSpec = SPEC,
    consumer: str | None = None,
    grace_s: float = 5.0,
) -> AsyncIterator[Worker]:
    """A :class:`Worker` running in this loop on clients of its own; stopped on exit."""
    async with worker_on(
        url, engine, spec, queue_settings, worker_settings, consumer=consumer, grace_s=grace_s
    ) as worker:
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, 10)


async def run_burst(
    url: str,
    engine: Engine,
    queue_settings: QueueSettings,
    worker_settings: WorkerSettings = FAST,
    *,
    spec: ModelSpec = SPEC,
    timeout_s: float = 20.0,
) -> Worker:
    """Run a burst-mode worker until the queues are drained."""
    async with worker_on(url, engine, spec, queue_settings, worker_settings, burst=True) as worker:
        await asyncio.wait_for(worker.run(), timeout_s)
    return worker


@contextlib.asynccontextmanager
async def worker_on(
    url: str,
    engine: Engine,
    spec: ModelSpec,
    queue_settings: QueueSettings,
    worker_settings: WorkerSettings,
    **options: Any,
) -> AsyncIterator[Worker]:
    """A :class:`Worker` on a client of its own (and one for prepared images), closed on exit."""
    client = await connect(url)
    images = await connect(url, decode_responses=False, load_library=False)
    try:
        yield Worker(
            client,
            spec,
            engine,
            queue_settings=queue_settings,
            worker_settings=worker_settings,
            images=PreparedImages(images, queue_settings.result_ttl_s),
            **options,
        )
    finally:
        await images.aclose()
        await client.aclose()


def spawn_worker(
    url: str,
    consumer: str,
    queue_settings: QueueSettings,
    *,
    token_delay_s: float,
    grace_s: float = 5.0,
) -> subprocess.Popen[str]:
    """A worker subprocess (tests/workers/worker_proc.py) with the scripted engine."""
    args = [
        sys.executable,
        "-m",
        "tests.workers.worker_proc",
        url,
        consumer,
        "--lease-ms",
        str(queue_settings.lease_ms),
        "--max-deliveries",
        str(queue_settings.max_deliveries),
        "--token-delay",
        str(token_delay_s),
        "--grace",
        str(grace_s),
        "--partitions",
        str(queue_settings.partitions),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> tuple[int, str, str]:
    """Wait for a worker subprocess (killing it on timeout); returns rc, stdout, stderr."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


async def running_on(redis_client: aioredis.Redis, job_id: str, consumer: str) -> bool:
    """True when the job runs on worker ``consumer``."""
    status, worker = await redis_client.hmget(keys.job(job_id), "status", "worker")
    return bool(status == JobStatus.RUNNING and worker == consumer)


@contextlib.asynccontextmanager
async def running_preprocess(
    url: str, settings: Settings, catalogue: Catalogue, slots: int = 2, *, files: bool = False
) -> AsyncIterator[PreprocessWorker]:
    """A preprocess worker (a pool of ``settings.preprocess.processes``, one by default)
    running in this loop on clients of its own (``files``: reading uploaded files where
    ``settings`` keep them); stopped on exit."""
    client = await connect(url)
    images = await connect(url, decode_responses=False, load_library=False)
    uploads = Files(client, open_storage(settings), settings.files) if files else None
    try:
        with process_pool(settings.preprocess.processes or 1) as pool:
            worker = PreprocessWorker(
                client, images, settings, catalogue, pool, slots, files=uploads
            )
            task = asyncio.create_task(worker.run())
            try:
                yield worker
            finally:
                worker.stop()
                await asyncio.wait_for(task, 10)
    finally:
        await images.aclose()
        await client.aclose()
