"""inferq's side of the queue bench: JobStore producers, WorkQueue claim → no-op → complete."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from itertools import islice
from multiprocessing.synchronize import Barrier
from pathlib import Path

import redis.asyncio as aioredis

from bench.sides import Meter, Plan, Report, metered, percentile, phase, settled
from queueing.catalogue import ModelSpec
from queueing.connection import connect
from queueing.jobstore import JobStore
from queueing.keys import JobClass, new_job_id
from queueing.schemas import JobRecord, JobResult, JobStatus, SamplingParams
from queueing.settings import QueueSettings
from queueing.subscriber import ShardedSubscriber
from queueing.workqueue import Outcome, WorkQueue

SPEC = ModelSpec(
    name="bench", path=Path("."), context_length=8192, prompt_weight=1, output_weight=1
)
TENANT = "bench"
ROOM = 1e9
EMPTY = JobResult(text="", finish_reason="stop")


def job(store: JobStore) -> JobRecord:
    """A small queued job, stamped now, in the partition the store's placement picks."""
    return JobRecord(
        id=new_job_id(store.place(SPEC.name, TENANT)),
        model=SPEC.name,
        status=JobStatus.QUEUED,
        job_class=JobClass.STANDARD,
        estimated_units=0.05,
        created_at=time.time(),
        tenant=TENANT,
        band=0,
        prompt_tokens=3,
        prompt="hello there",
        params=SamplingParams(max_tokens=8),
    )


def jobs(store: JobStore, count: int) -> list[JobRecord]:
    """``count`` fresh jobs (built before a phase, so that it times only the queue)."""
    return [job(store) for _ in range(count)]


async def _burst(store: JobStore, records: list[JobRecord], lanes: int, batch: int) -> Report:
    """Enqueue ``records`` from ``lanes`` concurrent lanes: one by one, or ``batch`` at once."""
    feed: Iterator[JobRecord] = iter(records)

    async def one_by_one() -> None:
        for record in feed:
            await store.enqueue(record)

    async def batched() -> None:
        while chunk := list(islice(feed, batch)):
            if not all(isinstance(r, str) for r in await store.enqueue_many(chunk)):
                raise RuntimeError("enqueue_many rejected a job")

    lane = batched if batch > 1 else one_by_one
    start = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return {"start": start, "acked": time.monotonic()}


async def _submit(store: JobStore) -> float:
    """What an API request does: stamp a job (``created_at``), enqueue it; returns the ack s."""
    record = job(store)
    await store.enqueue(record)
    return time.time() - record.created_at


async def _paced(store: JobStore, rate: float, count: int) -> Report:
    """Offer ``count`` jobs at ``rate``/s, one enqueue each: schedule lags and ack times (ms)."""
    tasks: list[asyncio.Task[float]] = []
    lags: list[float] = []
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(1000 * (time.monotonic() - due))
        tasks.append(asyncio.create_task(_submit(store)))
    acks = [1000 * s for s in await asyncio.gather(*tasks)]
    return {"lag_p99_ms": percentile(lags, 99), "ack_ms": [percentile(acks, q) for q in (50, 99)]}


async def producer(plan: Plan, barrier: Barrier) -> Report:
    """Enqueue with durability on (WAITAOF on the acknowledged path), as the API does."""
    client = await connect(plan.url, max_connections=plan.concurrency + 64)
    store = JobStore(client, QueueSettings(partitions=plan.partitions))
    report: Report = {"wait_aof": plan.wait_aof and await store.check_durability()}
    batched_lanes = max(1, plan.concurrency // plan.enqueue_batch)
    meter = Meter()
    half = plan.warmup // 2
    await phase(barrier)
    await _burst(store, jobs(store, half), plan.concurrency, 1)
    await _burst(store, jobs(store, plan.warmup - half), batched_lanes, plan.enqueue_batch)
    records = settled(jobs(store, plan.n))
    await phase(barrier)
    report["each"] = await metered(meter, _burst(store, records, plan.concurrency, 1))
    records = settled(jobs(store, plan.n))
    await phase(barrier)
    report["many"] = await metered(meter, _burst(store, records, batched_lanes, plan.enqueue_batch))
    del records
    settled(None)
    await phase(barrier)
    report["paced"] = await _paced(store, plan.rate, plan.paced)
    await client.aclose()
    return report


class _Consumer:
    """Claims in batches and completes each batch in one round trip (the no-op engine)."""

    def __init__(self, client: aioredis.Redis, plan: Plan) -> None:
        self.client = client
        self.plan = plan
        settings = QueueSettings(partitions=plan.partitions)
        self.wq = WorkQueue(client, SPEC, f"bench-{uuid.uuid4().hex[:8]}", settings)
        self.latencies: list[float] = []
        self.woken = asyncio.Event()
        self.notices = ShardedSubscriber(
            client, self.wq.wake_channels(), self._woken, name="bench consumer"
        )
        self.record = False
        self.done = 0
        self.finished = 0.0

    def _woken(self, channel: str, qfield: str) -> None:
        self.wq.woken(channel, qfield)
        self.woken.set()

    async def run(self, target: int) -> Report:
        """Consume ``target`` jobs with ``plan.consumers`` claim loops; returns when done."""
        self.done = 0
        lanes = [asyncio.create_task(self._lane(target)) for _ in range(self.plan.consumers)]
        await asyncio.wait(lanes, return_when=asyncio.FIRST_COMPLETED)
        for lane in lanes:
            lane.cancel()
        for outcome in await asyncio.gather(*lanes, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome
        return {"finished": self.finished}

    async def _lane(self, target: int) -> None:
        await self.notices.subscribed.wait()
        while self.done < target:
            self.woken.clear()
            jobs = await self.wq.claim(ROOM, self.plan.claim_batch, idle=True)
            if not jobs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.woken.wait(), 1.0)
                continue
            if self.record:
                now = time.time()
                self.latencies += [now - j.record.created_at for j in jobs]
            codes = await self.wq.complete_many(
                [Outcome(j, JobStatus.SUCCEEDED, result=EMPTY) for j in jobs]
            )
            if any(code != 1 for code in codes):
                raise RuntimeError(f"complete failed: {codes}")
            self.done += len(jobs)
        self.finished = time.monotonic()


async def consumer(plan: Plan, barrier: Barrier) -> Report:
    """One worker process: claim (batched) → no-op → complete (batched)."""
    client = await connect(plan.url, max_connections=plan.consumers * 2 + 8)
    worker = _Consumer(client, plan)
    meter = Meter(client)
    await worker.wq.ensure_groups()
    listening = asyncio.create_task(worker.notices.run())  # one subscription for every lane
    try:
        await phase(barrier)
        await worker.run(plan.warmup)
        settled(None)
        await phase(barrier)
        each = await metered(meter, worker.run(plan.n))
        await phase(barrier)
        many = await metered(meter, worker.run(plan.n))
        await phase(barrier)
        worker.record = True
        if plan.paced:
            await worker.run(plan.paced)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
    await client.aclose()
    return {"each": each, "many": many, "latencies": worker.latencies}
