"""Batch work on idle capacity: the share while higher classes are busy, and preemption."""

from __future__ import annotations

import asyncio
import json
import time

import redis.asyncio as aioredis

from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobStatus
from queueing.settings import QueueSettings, WorkerSettings
from queueing.workqueue import ClaimedJob
from tests.conftest import PARTITIONS
from tests.workers.support import job, running_worker, status_is, wait_until
from workers.batch_policy import BatchPolicy
from workers.engines.scripted import ScriptedEngine
from workers.jobrun import PREEMPTED_REASON, JobRun
from workers.loop import Worker

# A budget of ten 0.1-unit jobs; batch keeps 0.2 units (two jobs) while others are active.
POLICY = WorkerSettings(
    unit_budget=1.0,
    block_ms=500,
    renew_every_ms=250,
    flush_ms=20,
    flush_tokens=4,
    batch_share_when_busy=0.2,
    batch_busy_hold_s=0.3,
    batch_preempt_units=0.0,
)
QUEUE = QueueSettings(partitions=PARTITIONS, ageing_ms=10**9, lease_ms=5_000)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _runs(*classes: JobClass, units: float = 0.1) -> list[JobRun]:
    return [JobRun(ClaimedJob(job(job_class=c, units=units))) for c in classes]


def test_batch_is_capped_while_higher_work_is_active_and_for_the_hold_after() -> None:
    clock = Clock()
    policy = BatchPolicy(POLICY, budget=1.0, max_jobs=10, clock=clock)
    two_batch = _runs(JobClass.BATCH, JobClass.BATCH)
    assert policy.batch_room(two_batch, higher_waits=False) is None
    room = policy.batch_room(_runs(JobClass.BATCH, JobClass.INTERACTIVE), higher_waits=False)
    assert room is not None and abs(room.units - 0.1) < 1e-9 and room.jobs == 1
    room = policy.batch_room(_runs(*[JobClass.BATCH] * 3), higher_waits=True)
    assert room is not None and room.units < 0 and room.jobs == -1
    clock.now += 0.25
    assert policy.batch_room(two_batch, higher_waits=False) is not None, "within the hold"
    clock.now += 0.1
    assert policy.batch_room(two_batch, higher_waits=False) is None, "the hold is over"


def test_the_share_counts_engine_slots_as_well_as_units() -> None:
    policy = BatchPolicy(POLICY, budget=100.0, max_jobs=10)  # units never bind here
    runs = _runs(JobClass.INTERACTIVE, *[JobClass.BATCH] * 4)
    room = policy.batch_room(runs, higher_waits=True)
    assert room is not None and room.jobs == -2
    assert policy.may_preempt(runs)
    assert policy.victims(runs, waiting_units=0.1) == runs[-2:][::-1], "down to two slots"


def test_victims_are_the_newest_batch_jobs_beyond_the_share() -> None:
    policy = BatchPolicy(POLICY, budget=1.0, max_jobs=10)
    runs = _runs(JobClass.INTERACTIVE, *[JobClass.BATCH] * 9)
    assert policy.victims(runs, waiting_units=0.0) == [], "nothing waits: nothing preempted"
    assert policy.victims(runs, waiting_units=0.15) == runs[3:][::-1], "two batch jobs stay"
    for run in runs[3:]:
        run.aborted = True  # on their way out already
    assert policy.victims(runs, waiting_units=0.15) == [] and not policy.may_preempt(runs)
    high = BatchPolicy(POLICY.model_copy(update={"batch_preempt_units": 0.5}), 1.0, 10)
    assert high.victims(runs[:3], waiting_units=0.5) == [], "at the threshold: none"
    off = BatchPolicy(POLICY.model_copy(update={"batch_preempt": False}), 1.0, 10)
    assert off.victims(runs, waiting_units=5.0) == [] and not off.may_preempt(runs)


async def test_interactive_work_preempts_a_full_engine_of_batch_work_at_once(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    """A batch backlog fills the engine; an interactive job is claimed within a claim cycle
    (the newest batch jobs beyond the share are aborted and given back); the preempted jobs
    run again later and complete exactly once, without a delivery counted against them."""
    store = JobStore(redis_client, QUEUE)
    batch = [
        job(f"batch {i}", max_tokens=40, job_class=JobClass.BATCH, units=0.1) for i in range(14)
    ]
    for record in batch:
        await store.enqueue(record)
    engine = ScriptedEngine(token_delay_s=0.05)
    async with running_worker(queue_url, engine, QUEUE, POLICY) as worker:
        await wait_until(lambda: _running(engine, 10), 5, "batch work to fill the budget")
        urgent = job("urgent", max_tokens=4, job_class=JobClass.INTERACTIVE, units=0.1)
        sent = time.monotonic()
        await store.enqueue(urgent)
        await wait_until(lambda: _started(engine, urgent.id), 2, "the interactive job to start")
        claimed_s = time.monotonic() - sent
        assert claimed_s < POLICY.block_ms / 1000, f"claimed after {claimed_s:.2f}s"
        running_batch = [rid for rid in engine.started if rid != urgent.id][:10]
        assert sorted(engine.aborted) == sorted(running_batch[2:]), "all but the share's two"
        await wait_until(lambda: _holds(worker, 3), 1, "the preempted jobs to leave")
        engine.token_delay_s = 0.0
        await wait_until(lambda: _all_done(store, [*batch, urgent]), 10, "every job")
    assert sorted(engine.finished) == sorted(r.id for r in [*batch, urgent]), "each once"
    for victim in engine.aborted:
        assert engine.started.count(victim) == 2
        final = await store.get(victim, "local")
        assert final.attempts == 1, "a preemption is not a failed delivery"
        events = await store.events(victim)
        assert PREEMPTED_REASON in [json.loads(e.data).get("reason") for e in events]
        statuses = [json.loads(e.data)["status"] for e in events if e.type == "status"]
        assert statuses == ["queued", "running", "queued", "running", "succeeded"]


async def test_batch_fills_the_engine_when_idle_and_keeps_its_share_beside_interactive(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    """With nothing else waiting batch work uses the whole budget; while an interactive
    backlog runs, batch holds no more than its share and still progresses."""
    store = JobStore(redis_client, QUEUE)
    engine = ScriptedEngine(token_delay_s=0.02)
    batch = [job(f"b {i}", max_tokens=20, job_class=JobClass.BATCH, units=0.1) for i in range(30)]
    async with running_worker(queue_url, engine, QUEUE, POLICY):
        for record in batch[:12]:
            await store.enqueue(record)
        await wait_until(lambda: _running(engine, 10), 5, "batch work to fill the budget")
        interactive = [
            job(f"i {i}", max_tokens=30, job_class=JobClass.INTERACTIVE, units=0.1)
            for i in range(24)
        ]
        for record in [*interactive, *batch[12:]]:
            await store.enqueue(record)
        await wait_until(lambda: _started(engine, interactive[0].id), 2, "interactive work")
        await asyncio.sleep(0.2)  # the preempted batch jobs leave
        batch_ids = {r.id for r in batch}
        peak, finished_before = 0, len(set(engine.finished) & batch_ids)
        while not await _all_done(store, interactive):
            peak = max(peak, len([rid for rid in engine.running if rid in batch_ids]))
            await asyncio.sleep(0.01)
        assert peak <= 2, "batch held more than its share while interactive work ran"
        assert len(set(engine.finished) & batch_ids) > finished_before, "batch stood still"
        await wait_until(lambda: _all_done(store, batch), 10, "the batch")
    assert engine.peak_running >= 10


async def _holds(worker: Worker, n: int) -> bool:
    return worker.load().jobs <= n


async def _running(engine: ScriptedEngine, n: int) -> bool:
    return len(engine.running) >= n


async def _started(engine: ScriptedEngine, job_id: str) -> bool:
    return job_id in engine.started


async def _all_done(store: JobStore, records: list[JobRecord]) -> bool:
    return all([await status_is(store, r.id, JobStatus.SUCCEEDED) for r in records])
