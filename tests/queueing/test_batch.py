"""Batched enqueue and completion: one round trip, each job still atomic."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.errors import QueueFull
from queueing.jobstore import JobStore
from queueing.schemas import JobResult, JobStatus
from queueing.settings import QueueSettings
from queueing.workqueue import Outcome, WorkQueue
from tests.conftest import PARTITIONS
from tests.queueing.records import claim_all, record

SPEC = ModelSpec(name="m", path=Path("."), context_length=100, prompt_weight=1, output_weight=1)


async def test_enqueue_many_keeps_ceiling_and_idempotency(redis_client: aioredis.Redis) -> None:
    # The ceiling holds per partition (max_queued_units / partitions); one partition here.
    store = JobStore(
        redis_client, QueueSettings(partitions=PARTITIONS, max_queued_units=0.25 * PARTITIONS)
    )
    await store.check_durability()
    keyed = store.place("m", "local", "a")  # a keyed job goes where its key hashes to
    jobs = [record(units=0.1, partition=keyed) for _ in range(4)]
    replies = await store.enqueue_many(jobs, ["a", "a", None, None])
    assert replies[0] == jobs[0].id
    assert replies[1] == jobs[0].id, "a replayed key returns the first job"
    assert replies[2] == jobs[2].id
    assert isinstance(replies[3], QueueFull), "the fourth job passes the ceiling"
    counters = await store.unit_counters(SPEC)
    assert counters["arrivals"] == 2 and counters["queued"] == 0.2


async def test_complete_many_is_one_outcome_per_job(redis_client: aioredis.Redis) -> None:
    settings = QueueSettings(partitions=PARTITIONS)
    store = JobStore(redis_client, settings)
    jobs = [record() for _ in range(3)]
    await store.enqueue_many(jobs)
    wq = WorkQueue(redis_client, SPEC, "w", settings)
    claimed = await claim_all(wq, 10.0, 10)
    # Jobs enqueued in the same millisecond in different partitions have no order between them.
    assert sorted(c.id for c in claimed) == sorted(j.id for j in jobs)
    done = [Outcome(c, JobStatus.SUCCEEDED, result=JobResult(text=c.id)) for c in claimed]
    assert await wq.complete_many(done) == [1, 1, 1]
    assert await wq.complete_many(done[:1]) == [0], "a second completion changes nothing"
    for job in jobs:
        final = await store.get(job.id, "local")
        assert final.status == JobStatus.SUCCEEDED and final.result == JobResult(text=job.id)
    counters = await store.unit_counters(SPEC)
    assert counters["inflight"] == 0 and counters["succeeded"] == 3
