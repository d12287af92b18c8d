"""arq's side of the queue bench: ``enqueue_job`` producers and an arq ``Worker``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from bench.sides import Meter, Plan, Report, metered, phase, settled

POLL_DELAY_S = 0.001


async def noop(ctx: dict[str, Any]) -> None:
    """The job: nothing at all."""


async def _burst(pool: ArqRedis, count: int, lanes: int) -> Report:
    feed: Iterator[int] = iter(range(count))

    async def lane() -> None:
        for _ in feed:
            await pool.enqueue_job("noop")

    start = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return {"start": start, "acked": time.monotonic()}


async def producer(plan: Plan, barrier: Barrier) -> Report:
    """Enqueue ``noop`` jobs with ``plan.concurrency`` concurrent lanes."""
    pool = await create_pool(RedisSettings.from_dsn(plan.url))
    await phase(barrier)
    await _burst(pool, plan.warmup, plan.concurrency)
    settled(None)
    await phase(barrier)
    timed = await metered(Meter(), _burst(pool, plan.n, plan.concurrency))
    await phase(barrier)
    await pool.aclose()
    return {"timed": timed}


async def _work(pool: ArqRedis, plan: Plan, target: int) -> Report:
    """Run an arq burst worker until ``target`` jobs are done; returns when the last one was.

    A burst worker also stops whenever it finds the queue empty, which happens while the
    producer is still enqueueing; it is then started again after ``poll_delay``. (Not
    ``max_burst_jobs``: arq 0.28 counts a finished job twice until its next poll cleans up,
    so that limit can stop a worker for good before its last jobs ran.)
    """
    finished = 0.0

    async def after_job_end(ctx: dict[str, Any]) -> None:
        nonlocal finished
        finished = time.monotonic()

    worker = Worker(
        functions=[noop],
        redis_pool=pool,
        burst=True,
        poll_delay=POLL_DELAY_S,
        max_jobs=plan.max_jobs,
        handle_signals=False,
        after_job_end=after_job_end,
    )
    while worker.jobs_complete + worker.jobs_failed + worker.jobs_retried < target:
        await worker.main()
        await asyncio.sleep(POLL_DELAY_S)
    if worker.jobs_complete != target:
        raise RuntimeError(f"arq: {worker.jobs_complete} of {target} jobs succeeded")
    return {"finished": finished}


async def consumer(plan: Plan, barrier: Barrier) -> Report:
    """One arq worker process."""
    pool = await create_pool(RedisSettings.from_dsn(plan.url))
    await phase(barrier)
    await _work(pool, plan, plan.warmup)
    settled(None)
    await phase(barrier)
    timed = await metered(Meter(pool), _work(pool, plan, plan.n))
    await phase(barrier)
    await pool.aclose()
    return {"timed": timed}
