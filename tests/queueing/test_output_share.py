"""Real output lengths feed the per-tenant, per-model estimate of the cost model."""

from __future__ import annotations

import redis.asyncio as aioredis

from queueing.admission import Admission
from queueing.catalogue import Catalogue
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobResult, JobStatus, SamplingParams, Usage
from queueing.settings import QueueSettings
from queueing.workqueue import WorkQueue
from tests.queueing.records import record
from tests.queueing.test_cycle import SPEC


async def _finish(
    store: JobStore, wq: WorkQueue, tenant: str, tokens: int, status: JobStatus
) -> None:
    job = record(tenant=tenant, partition=0)  # max_tokens 8; one partition: one average
    await store.enqueue(job)
    [claimed] = await wq.claim(10.0, 1, idle=True)
    usage = Usage(prompt_tokens=3, completion_tokens=tokens, total_tokens=3 + tokens)
    result = JobResult(text="x" * tokens) if status == JobStatus.SUCCEEDED else None
    error = "engine failed" if status == JobStatus.FAILED else None
    assert await wq.complete(claimed, status, result=result, usage=usage, error=error) == 1


async def test_completions_move_the_tenants_moving_share(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    settings = queue_settings.model_copy(update={"output_share_cache_s": 0.0})
    store = JobStore(redis_client, settings)
    wq = WorkQueue(redis_client, SPEC, "w1", settings)
    assert await store.output_share(SPEC.name, "acme") is None
    await _finish(store, wq, "acme", 2, JobStatus.SUCCEEDED)
    assert await store.output_share(SPEC.name, "acme") == 0.25
    await _finish(store, wq, "acme", 8, JobStatus.SUCCEEDED)
    assert await store.output_share(SPEC.name, "acme") == 0.25 + 0.2 * (1.0 - 0.25)
    await _finish(store, wq, "acme", 0, JobStatus.FAILED)  # failures say nothing of lengths
    assert await store.output_share(SPEC.name, "acme") == 0.4
    assert await store.output_share(SPEC.name, "globex") is None
    assert await store.output_share("other-model", "acme") is None


async def test_shares_are_cached_for_a_few_seconds(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings.model_copy(update={"output_share_cache_s": 60}))
    wq = WorkQueue(redis_client, SPEC, "w1", queue_settings)
    assert await store.output_share(SPEC.name, "acme") is None
    await _finish(store, wq, "acme", 4, JobStatus.SUCCEEDED)
    assert await store.output_share(SPEC.name, "acme") is None  # cached miss
    assert await JobStore(redis_client, queue_settings).output_share(SPEC.name, "acme") == 0.5


def test_a_short_history_lowers_the_estimate_and_the_band(catalogue: Catalogue) -> None:
    admission = Admission(catalogue, "smollm2-135m-instruct")

    def admit(share: float | None) -> JobRecord:
        return admission.admit(
            tenant="acme",
            partition=0,
            model=None,
            prompt="Say hi.",
            messages=None,
            params=SamplingParams(max_tokens=1000),
            job_class=JobClass.STANDARD,
            recent_output_share=share,
        )

    fresh, terse = admit(None), admit(0.04)
    assert fresh.estimated_units > 0.9 and fresh.band == 2
    assert terse.estimated_units < 0.1 and terse.band == 0
    assert terse.params.max_tokens == 1000  # the estimate changes, never the request
