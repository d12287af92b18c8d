"""The preprocess streams and the hand-off (real Valkey: single server and cluster)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from queueing import keys
from queueing.calls import COUNTERS
from queueing.catalogue import ModelSpec
from queueing.connection import Client, fcall
from queueing.cost import CostEstimate, estimate, with_prepared_images
from queueing.errors import QueueFull
from queueing.figures import read_figures
from queueing.images import reference
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.prequeue import PreQueue
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from queueing.settings import QueueSettings
from queueing.workqueue import WorkQueue

VLM = ModelSpec(
    name="v",
    path=Path("."),
    context_length=4096,
    prompt_weight=1,
    output_weight=1,
    image_tokens=10,
)


def image_job(partition: int, images: int = 1, max_tokens: int = 5) -> JobRecord:
    """A job as the API makes it: each image counted as the model's image tokens."""
    prompt_tokens = 3 + images * VLM.image_tokens
    cost = estimate(VLM, prompt_tokens=3, max_tokens=max_tokens, image_tokens=prompt_tokens - 3)
    return JobRecord(
        id=keys.new_job_id(partition),
        model=VLM.name,
        status=JobStatus.QUEUED,
        job_class=JobClass.INTERACTIVE,
        estimated_units=cost.units,
        created_at=time.time(),
        tenant="local",
        band=cost.band,
        prompt_tokens=prompt_tokens,
        prompt="<image> what is it?",
        params=SamplingParams(max_tokens=max_tokens),
        images=["data:image/png;base64,AAAA"] * images,
    )


def prepared(
    record: JobRecord, images: int = 1, image_tokens: int = 10
) -> tuple[int, CostEstimate]:
    """The record's prompt tokens and estimate once its ``images`` became ``image_tokens``."""
    return with_prepared_images(
        VLM,
        prompt_tokens=record.prompt_tokens,
        units=record.estimated_units,
        images=images,
        image_tokens=image_tokens,
    )


@pytest.fixture
def store(redis_client: Client, queue_settings: QueueSettings) -> JobStore:
    return JobStore(redis_client, queue_settings)


async def test_a_job_with_images_waits_for_preparation_uncounted_as_queued(
    redis_client: Client, store: JobStore, queue_settings: QueueSettings
) -> None:
    record = image_job(1)
    await store.enqueue(record)
    stored = await store.get(record.id, "local")
    assert stored.status is JobStatus.QUEUED
    assert stored.stream == keys.prequeue("v", 1, JobClass.INTERACTIVE)
    assert await redis_client.xlen(keys.prequeue("v", 1, JobClass.INTERACTIVE)) == 1
    figures = (await read_figures(redis_client, queue_settings, ["v"]))["v"]
    assert (figures.queued_units, figures.queued_jobs, figures.inflight_jobs) == (0.0, 0, 0)
    assert (figures.preparing_jobs, figures.preparing_units) == (1, record.estimated_units)
    assert figures.arrivals == 1
    text = record.model_copy(update={"id": keys.new_job_id(1), "images": []})
    await store.enqueue(text)  # a text-only job goes to the model queue as before
    assert (await store.get(text.id, "local")).stream == keys.waiting(
        "v", 1, JobClass.INTERACTIVE, text.band
    )


async def test_the_ceiling_counts_jobs_waiting_for_preparation(redis_client: Client) -> None:
    """Image jobs being prepared are waiting work too: a text job past the ceiling they fill
    is refused, as an image job is past queued text jobs."""
    record = image_job(0)
    settings = QueueSettings(
        partitions=1, max_queued_units=record.estimated_units * 1.5
    )  # one job fits, a second does not
    store = JobStore(redis_client, settings)
    await store.enqueue(record)
    text = record.model_copy(update={"id": keys.new_job_id(0), "images": []})
    with pytest.raises(QueueFull):
        await store.enqueue(text)
    await redis_client.delete(keys.units("v", 0))  # nothing waits: the text job goes first
    await store.enqueue(text.model_copy(update={"id": keys.new_job_id(0)}))
    with pytest.raises(QueueFull):
        await store.enqueue(image_job(0))


async def test_the_hand_off_queues_the_job_for_its_model_with_its_images_tokens(
    redis_client: Client, store: JobStore, queue_settings: QueueSettings
) -> None:
    record = image_job(2, images=2)
    await store.enqueue(record)
    pre = PreQueue(redis_client, ["v"], "pre-1", queue_settings)
    [held] = await pre.claim(4)
    assert held.id == record.id and held.record.worker == "pre-1"
    assert await pre.claim(4) == []  # delivered once
    # Prepared, the images turn out dearer than the admission thought: 25 tokens each.
    tokens, cost = prepared(record, images=2, image_tokens=50)
    assert tokens == 53 and cost.units == estimate(VLM, prompt_tokens=53, max_tokens=5).units
    refs = [reference("a" * 64), reference("b" * 64)]
    assert await pre.handoff(held, VLM, refs, ["a" * 64, "b" * 64], tokens, cost) == 1
    moved = await store.get(record.id, "local")
    assert moved.status is JobStatus.QUEUED and moved.images == refs
    assert (moved.prompt_tokens, moved.estimated_units, moved.band) == (53, cost.units, cost.band)
    # It waits as an enqueued job does: its member in the waiting and arrival sets, its
    # tenant active in the class.
    assert moved.stream == keys.waiting("v", 2, JobClass.INTERACTIVE, cost.band)
    assert moved.entry and moved.entry.endswith(":" + record.id)
    assert await redis_client.zscore(moved.stream, moved.entry) == 0
    order = keys.arrivals("v", 2, JobClass.INTERACTIVE, cost.band)
    assert await redis_client.zscore(order, moved.entry) is not None
    active = keys.active("v", 2, JobClass.INTERACTIVE)
    assert await redis_client.zrange(active, 0, -1) == [record.tenant]
    figures = (await read_figures(redis_client, queue_settings, ["v"]))["v"]
    assert (figures.preparing_jobs, figures.queued_jobs, figures.queued_units) == (0, 1, cost.units)
    assert figures.arrivals == 1 and figures.arrived_units == cost.units
    assert await redis_client.xlen(held.stream) == 0  # acked and deleted
    # A second hand-off (a redelivery) changes nothing; the LLM worker gets the job once.
    assert await pre.handoff(held, VLM, refs, [], tokens, cost) == 0
    llm = WorkQueue(redis_client, VLM, "llm-1", queue_settings)
    [claimed] = await llm.claim(100.0, 8, idle=True)
    assert claimed.id == record.id and claimed.record.images == refs
    assert await llm.claim(100.0, 8, idle=True) == []


async def test_a_bad_image_fails_the_job_with_the_reason(
    redis_client: Client, store: JobStore, queue_settings: QueueSettings
) -> None:
    record = image_job(0)
    await store.enqueue(record)
    pre = PreQueue(redis_client, ["v"], "pre-1", queue_settings)
    [held] = await pre.claim(1)
    other = PreQueue(redis_client, ["v"], "pre-2", queue_settings)
    assert await other.fail(held, "not mine") == -1
    assert await pre.fail(held, "image 1 of 1: the image is truncated", "invalid_image") == 1
    failed = await store.get(record.id, "local")
    assert (
        failed.status is JobStatus.FAILED and failed.error == "image 1 of 1: the image is truncated"
    )
    assert failed.error_code == "invalid_image"
    events = [e.type for e in await store.events(record.id)]
    assert events == ["status", "error", "status"]
    figures = (await read_figures(redis_client, queue_settings, ["v"]))["v"]
    assert figures.preparing_jobs == 0 and figures.finished["failed"] == 1
    assert figures.inflight_jobs == 0


async def test_cancel_while_waiting_or_held_for_preparation(
    redis_client: Client, store: JobStore, queue_settings: QueueSettings
) -> None:
    waiting, held_job = image_job(0), image_job(0)
    await store.enqueue(held_job)
    pre = PreQueue(redis_client, ["v"], "pre-1", queue_settings)
    [held] = await pre.claim(1)
    await store.enqueue(waiting)
    for record in (waiting, held_job):
        assert (await store.cancel(record.id, "local")).status is JobStatus.CANCELLED
    assert await pre.claim(4) == []  # the waiting one's entry is gone
    tokens, cost = prepared(held_job)
    assert await pre.handoff(held, VLM, [reference("c" * 64)], [], tokens, cost) == 0
    figures = (await read_figures(redis_client, queue_settings, ["v"]))["v"]
    assert (figures.preparing_jobs, figures.preparing_units, figures.queued_jobs) == (0, 0.0, 0)
    assert figures.finished["cancelled"] == 2


async def test_a_lapsed_lease_is_taken_over_and_too_many_deliveries_fail(
    redis_client: Client, store: JobStore, queue_settings: QueueSettings
) -> None:
    record = image_job(3)
    await store.enqueue(record)
    first = PreQueue(redis_client, ["v"], "pre-1", queue_settings)
    [held] = await first.claim(1)
    lost, _ = await first.renew([held])
    assert lost == set()
    await asyncio.sleep(queue_settings.lease_ms / 1000 + 0.1)
    second = PreQueue(redis_client, ["v"], "pre-2", queue_settings)
    [again] = await second.reclaim(4)
    assert again.id == record.id and again.record.worker == "pre-2"
    assert (await first.renew([held]))[0] == {record.id}
    assert (
        await first.handoff(held, VLM, [], [], 1, estimate(VLM, prompt_tokens=1, max_tokens=1))
        == -1
    )
    for _ in range(queue_settings.max_deliveries - 1):
        await asyncio.sleep(queue_settings.lease_ms / 1000 + 0.1)
        await second.reclaim(4)
    final = await store.get(record.id, "local")
    assert final.status is JobStatus.FAILED and "preprocess tier" in (final.error or "")
    assert await redis_client.xlen(keys.dead(3)) == 1


async def test_cancel_of_a_job_handed_on_since_it_was_read(
    redis_client: Client, store: JobStore, queue_settings: QueueSettings
) -> None:
    record = image_job(1)
    await store.enqueue(record)
    pre = PreQueue(redis_client, ["v"], "pre-1", queue_settings)
    [held] = await pre.claim(1)
    stale = await store.get(record.id, "local")  # read while it waits for preparation
    tokens, cost = prepared(record)
    assert await pre.handoff(held, VLM, [reference("d" * 64)], [], tokens, cost) == 1
    # A cancel made from the stale read names the preprocess stream: the job is not there.
    assert await fcall(redis_client, store._cancel_call(stale)) == "moved"
    assert (await store.cancel(record.id, "local")).status is JobStatus.CANCELLED
    waiting = keys.waiting("v", 1, JobClass.INTERACTIVE, cost.band)
    assert await redis_client.zcard(waiting) == 0
    assert await redis_client.zcard(keys.arrivals("v", 1, JobClass.INTERACTIVE, cost.band)) == 0
    assert await redis_client.zcard(keys.active("v", 1, JobClass.INTERACTIVE)) == 0
    units = await redis_client.hgetall(keys.units("v", 1))
    assert COUNTERS["TENANT_OF"] + "local" not in units  # the tenant's units are back at zero
    figures = (await read_figures(redis_client, queue_settings, ["v"]))["v"]
    assert (figures.queued_jobs, figures.preparing_jobs) == (0, 0)
    assert figures.finished["cancelled"] == 1
