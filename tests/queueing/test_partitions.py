"""Claim order across partitions: the order one partition would give, within a millisecond.

The deviation allowed: jobs are served by (class, band, less ageing) as inside one
partition; within one class and band, jobs that arrived within ``claim_slack_ms`` (50 ms) of
each other in different partitions may leave in either order (a claim keeps taking from one
partition that long, to save round trips). So with P=8 and a mixed backlog, no interactive
job waits behind a batch job of the same model (unless ageing lifted the batch job).
"""

from __future__ import annotations

import asyncio

from queueing.connection import Client
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.settings import QueueSettings
from queueing.workqueue import WorkQueue
from tests.queueing.records import claim_all, record
from tests.queueing.test_calls import SPEC


async def test_with_eight_partitions_interactive_work_never_waits_behind_batch(
    redis_client: Client,
) -> None:
    settings = QueueSettings(partitions=8, ageing_ms=10**9)
    store = JobStore(redis_client, settings)
    batch = [record(job_class=JobClass.BATCH, partition=p % 8) for p in range(16)]
    interactive = [
        record(job_class=JobClass.INTERACTIVE, band=p % 2, partition=(3 * p) % 8) for p in range(16)
    ]
    for job in [*batch, *interactive]:
        await store.enqueue(job)
        await asyncio.sleep(0.002)  # distinct milliseconds: FIFO within a rank is checkable
    worker = WorkQueue(redis_client, SPEC, "w", settings)
    order = []
    for _ in range(32):  # one job per claim round
        order += [job.id for job in await worker.claim(100.0, 1, idle=True)]
    ranked = sorted(interactive, key=lambda j: j.band)  # stable: FIFO within a band
    assert order == [j.id for j in ranked] + [j.id for j in batch]


async def test_a_claim_takes_several_jobs_across_partitions_in_order(redis_client: Client) -> None:
    settings = QueueSettings(partitions=8, ageing_ms=10**9, claim_slack_ms=0)
    store = JobStore(redis_client, settings)
    jobs = [record(job_class=JobClass.STANDARD, partition=p) for p in range(8)]
    for job in jobs:
        await store.enqueue(job)
        await asyncio.sleep(0.002)
    worker = WorkQueue(redis_client, SPEC, "w", settings)
    assert [j.id for j in await claim_all(worker, 100.0, 8)] == [j.id for j in jobs]


async def test_the_slack_lets_one_pick_take_a_run_of_one_partition(redis_client: Client) -> None:
    settings = QueueSettings(partitions=2, ageing_ms=5_000, claim_slack_ms=10_000)
    store = JobStore(redis_client, settings)
    first = [record(partition=0), record(partition=1), record(partition=0), record(partition=1)]
    for job in first:
        await store.enqueue(job)
        await asyncio.sleep(0.002)
    worker = WorkQueue(redis_client, SPEC, "w", settings)
    claimed = [j.id for j in await claim_all(worker, 100.0, 4)]
    assert claimed == [first[0].id, first[2].id, first[1].id, first[3].id]
