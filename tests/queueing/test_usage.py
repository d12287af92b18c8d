"""Usage is metered where jobs finish (in the Lua steps), per tenant and model, summed over
partitions and time buckets, on a single server and on a cluster."""

from __future__ import annotations

import time

from queueing import keys
from queueing.connection import Client
from queueing.jobstore import JobStore
from queueing.prequeue import PreQueue
from queueing.schemas import JobStatus, Usage
from queueing.settings import QueueSettings
from queueing.usage import UsageRow, read_totals, read_usage, summed
from queueing.workqueue import WorkQueue
from tests.queueing.records import claim_all, record
from tests.queueing.test_calls import SPEC
from tests.queueing.test_prequeue import image_job

USED = Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8)


async def test_every_outcome_is_counted_once_per_tenant_and_model(
    redis_client: Client, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    jobs = {
        "a": [record(tenant="a", units=0.25) for _ in range(3)],
        "b": [record(tenant="b", units=0.5) for _ in range(3)],
    }
    for job in jobs["a"] + jobs["b"]:
        await store.enqueue(job)
    await store.cancel(jobs["b"][0].id, "b")  # cancelled while queued: no units
    worker = WorkQueue(redis_client, SPEC, "w", queue_settings)
    held = {job.id: job for job in await claim_all(worker, 100.0, 10)}
    assert len(held) == 5
    a1, a2, a3 = (held[j.id] for j in jobs["a"])
    b2, b3 = held[jobs["b"][1].id], held[jobs["b"][2].id]
    await worker.complete(a1, JobStatus.SUCCEEDED, usage=USED)
    await worker.complete(a2, JobStatus.SUCCEEDED, usage=USED)
    await worker.complete(a3, JobStatus.FAILED, error="engine error")
    await worker.complete(b2, JobStatus.SUCCEEDED, usage=USED)
    await worker.complete(b3, JobStatus.CANCELLED, usage=USED)  # cancelled while it ran
    assert await worker.complete(a1, JobStatus.SUCCEEDED, usage=USED) == 0  # a replay: no-op

    rows = await read_usage(redis_client, queue_settings, since=time.time() - 60)
    assert rows == [
        UsageRow(
            tenant="a",
            model="m",
            units=0.75,
            prompt_tokens=6,
            completion_tokens=10,
            requests={"succeeded": 2, "failed": 1, "cancelled": 0},
        ),
        UsageRow(
            tenant="b",
            model="m",
            units=1.0,
            prompt_tokens=6,
            completion_tokens=10,
            requests={"succeeded": 1, "failed": 0, "cancelled": 2},
        ),
    ]
    only_b = await read_usage(redis_client, queue_settings, since=time.time() - 60, tenant="b")
    assert only_b == rows[1:]
    assert await read_totals(redis_client, queue_settings) == rows
    hours_ago = time.time() - 3 * 3600
    assert await read_usage(redis_client, queue_settings, since=hours_ago, until=hours_ago) == []
    # Buckets expire after the retention; the totals do not.
    for partition in range(queue_settings.max_partitions):
        bucket = keys.usage(partition, int(time.time()) // 3600 * 3600)
        ttl = await redis_client.ttl(bucket)
        assert ttl == -2 or 0 < ttl <= queue_settings.usage_ttl_s
        assert await redis_client.ttl(keys.usage_total(partition)) in (-1, -2)


def test_rows_sum_partitions_and_keep_odd_tenant_names() -> None:
    hashes = [
        {"x|y|m|units": "1.5", "x|y|m|succeeded": "1", "z|m|prompt_tokens": "7"},
        {"x|y|m|units": "0.5", "x|y|m|failed": "2", "z|m|completion_tokens": "4"},
    ]
    rows = summed(hashes)
    assert [(r.tenant, r.model) for r in rows] == [("x|y", "m"), ("z", "m")]
    assert rows[0].units == 2.0 and rows[0].requests == {
        "succeeded": 1,
        "failed": 2,
        "cancelled": 0,
    }
    assert (rows[1].prompt_tokens, rows[1].completion_tokens) == (7, 4)


async def test_a_job_failed_by_the_preprocess_tier_is_metered_without_units(
    redis_client: Client, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    job = image_job(partition=1).model_copy(update={"tenant": "a"})
    await store.enqueue(job)
    pre = PreQueue(redis_client, ["v"], "pre-1", queue_settings)
    [held] = await pre.claim(1)
    assert await pre.fail(held, "image 1 of 1: the image is truncated") == 1
    rows = await read_usage(redis_client, queue_settings, since=time.time() - 60)
    assert rows == [
        UsageRow(tenant="a", model="v", requests={"succeeded": 0, "failed": 1, "cancelled": 0})
    ]
