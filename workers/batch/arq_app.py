"""The arq worker that runs batches: a task that advances one, and a cron sweep."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings as ArqRedisSettings
from arq.cron import cron
from arq.worker import Worker, func

from queueing.batches import Batches
from workers.batch.runner import BatchRunner

ADVANCE = "advance_batch"


async def advance_batch(ctx: dict[str, Any], batch_id: str) -> None:
    """Advance one batch for a slice of time (the sweep starts the next slice)."""
    runner: BatchRunner = ctx["runner"]
    await runner.advance(batch_id)


async def sweep_batches(ctx: dict[str, Any]) -> int:
    """Start an advance job for every active batch nobody holds; returns how many.

    A job queued but not begun within the lease time (its arq worker died) is superseded
    by a new one; a late starter finds the batch leased and returns at once.
    """
    batches: Batches = ctx["batches"]
    started = 0
    for batch_id in await batches.active():
        if await batches.leased(batch_id):
            continue
        token = await batches.launch(batch_id, ctx["lease_ms"])
        if token is not None:
            await ctx["redis"].enqueue_job(ADVANCE, batch_id, _job_id=f"advance:{batch_id}:{token}")
            started += 1
    return started


def batch_worker(arq_url: str, runner: BatchRunner, batches: Batches, **options: Any) -> Worker:
    """An arq worker over the server at ``arq_url`` that runs batches with ``runner``."""
    settings = runner.settings
    # No arq retries: a job whose worker died is replaced by the sweep, under a new id.
    advance = func(
        advance_batch, name=ADVANCE, keep_result=0, timeout=settings.slice_s + 120, max_tries=1
    )
    return Worker(
        functions=[advance],
        cron_jobs=[cron(sweep_batches, second=set(range(60)), run_at_startup=True, timeout=30)],
        redis_settings=ArqRedisSettings.from_dsn(arq_url),
        ctx={"runner": runner, "batches": batches, "lease_ms": settings.lease_ms},
        keep_result=0,
        **options,
    )
