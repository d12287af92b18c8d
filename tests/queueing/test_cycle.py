"""Enqueue → claim → emit → complete through the Lua functions."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.jobstore import JobStore
from queueing.schemas import JobResult, JobStatus, Usage
from queueing.settings import QueueSettings
from queueing.workqueue import EmitOutcome, WorkQueue
from tests.queueing.records import record

SPEC = ModelSpec(name="m", path=Path("."), context_length=100, prompt_weight=1, output_weight=1)


async def test_round_trip(redis_client: aioredis.Redis, queue_settings: QueueSettings) -> None:
    store = JobStore(redis_client, queue_settings)
    assert await store.check_durability()
    job = record()
    assert await store.enqueue(job) == job.id
    wq = WorkQueue(redis_client, SPEC, "w1", queue_settings)
    [claimed] = await wq.claim(10.0, 4, idle=True)
    assert claimed.id == job.id and claimed.record.status == JobStatus.RUNNING
    assert await wq.emit(claimed, [("tokens", '{"text":"hi"}')]) == EmitOutcome.OWNED
    done = await wq.complete(
        claimed,
        JobStatus.SUCCEEDED,
        result=JobResult(text="hi"),
        usage=Usage(prompt_tokens=3, completion_tokens=1, total_tokens=4),
    )
    assert done == 1
    assert await wq.complete(claimed, JobStatus.SUCCEEDED, result=JobResult(text="x")) == 0
    final = await store.get(job.id, "local")
    assert final.status == JobStatus.SUCCEEDED and final.result == JobResult(text="hi")
    kinds = [e.type for e in await store.events(job.id)]
    assert kinds == ["status", "status", "tokens", "result", "status"]
    counters = await store.unit_counters(SPEC)
    assert counters["queued"] == 0 and counters["inflight"] == 0
