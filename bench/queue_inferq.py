"""inferq's side of the queue bench: JobStore.enqueue producers, WorkQueue claim/complete."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path

import redis.asyncio as aioredis

from bench.sides import Plan, Report, phase
from queueing.catalogue import ModelSpec
from queueing.connection import connect
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobResult, JobStatus, SamplingParams
from queueing.settings import QueueSettings
from queueing.workqueue import ClaimedJob, WorkQueue

SPEC = ModelSpec(
    name="bench", path=Path("."), context_length=8192, prompt_weight=1, output_weight=1
)
ROOM = 1e9
EMPTY = JobResult(text="", finish_reason="stop")


def job() -> JobRecord:
    """A small queued job, stamped now."""
    return JobRecord(
        id=f"job_{uuid.uuid4().hex}",
        model=SPEC.name,
        status=JobStatus.QUEUED,
        job_class=JobClass.STANDARD,
        estimated_units=0.05,
        created_at=time.time(),
        tenant="bench",
        band=0,
        prompt_tokens=3,
        prompt="hello there",
        params=SamplingParams(max_tokens=8),
    )


async def _burst(store: JobStore, count: int, lanes: int) -> tuple[float, float]:
    records = [job() for _ in range(count)]
    feed: Iterator[JobRecord] = iter(records)

    async def lane() -> None:
        for record in feed:
            await store.enqueue(record)

    start = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return start, time.monotonic()


async def _paced(store: JobStore, rate: float, count: int) -> float:
    """Offer ``count`` jobs at ``rate``/s; returns the p99 lag behind the schedule in ms."""
    tasks: set[asyncio.Task[str]] = set()
    lags: list[float] = []
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(time.monotonic() - due)
        task = asyncio.create_task(store.enqueue(job()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    lags.sort()
    return lags[int(len(lags) * 0.99)] * 1000


async def producer(plan: Plan, barrier: Barrier) -> Report:
    """Enqueue with durability on (WAITAOF on the acknowledged path), as the API does."""
    client = await connect(plan.url, max_connections=plan.concurrency + 64)
    store = JobStore(client, QueueSettings())
    durable = await store.check_durability()
    await phase(barrier)
    await _burst(store, plan.warmup, plan.concurrency)
    await phase(barrier)
    start, acked = await _burst(store, plan.n, plan.concurrency)
    await phase(barrier)
    lag_p99 = await _paced(store, plan.rate, plan.paced) if plan.paced else 0.0
    await client.aclose()
    return {"start": start, "acked": acked, "wait_aof": durable, "lag_p99_ms": lag_p99}


class _Consumer:
    """Claims in batches and completes each batch with an empty result (the no-op engine)."""

    def __init__(self, client: aioredis.Redis, plan: Plan) -> None:
        self.client = client
        self.plan = plan
        self.wq = WorkQueue(client, SPEC, f"bench-{uuid.uuid4().hex[:8]}", QueueSettings())
        self.latencies: list[float] = []
        self.record = False
        self.done = 0
        self.finished = 0.0

    async def run(self, target: int) -> None:
        """Consume until ``target`` jobs are done, with ``plan.consumers`` concurrent lanes."""
        self.done = 0
        lanes = [asyncio.create_task(self._lane(target)) for _ in range(self.plan.consumers)]
        await asyncio.wait(lanes, return_when=asyncio.FIRST_COMPLETED)
        for lane in lanes:
            lane.cancel()
        for outcome in await asyncio.gather(*lanes, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome

    async def _lane(self, target: int) -> None:
        blocking = aioredis.Redis.from_url(self.plan.url, decode_responses=True)
        try:
            while self.done < target:
                jobs = await self.wq.claim(ROOM, self.plan.batch, idle=True)
                if not jobs:
                    await self.wq.wait_for_work(blocking, 1.0)
                    continue
                if self.record:
                    now = time.time()
                    self.latencies += [now - j.record.created_at for j in jobs]
                await self._complete(jobs)
                self.done += len(jobs)
            self.finished = time.monotonic()
        finally:
            await blocking.aclose()

    async def _complete(self, jobs: list[ClaimedJob]) -> None:
        codes = await asyncio.gather(
            *(self.wq.complete(j, JobStatus.SUCCEEDED, result=EMPTY) for j in jobs)
        )
        if any(code != 1 for code in codes):
            raise RuntimeError(f"complete failed: {codes}")


async def consumer(plan: Plan, barrier: Barrier) -> Report:
    """One worker process: claim (batched) → no-op → complete."""
    client = await connect(plan.url, max_connections=plan.batch * plan.consumers + 64)
    worker = _Consumer(client, plan)
    await worker.wq.ensure_groups()
    await phase(barrier)
    await worker.run(plan.warmup)
    await phase(barrier)
    await worker.run(plan.n)
    finished = worker.finished
    await phase(barrier)
    worker.record = True
    if plan.paced:
        await worker.run(plan.paced)
    await client.aclose()
    return {"finished": finished, "latencies": worker.latencies}
