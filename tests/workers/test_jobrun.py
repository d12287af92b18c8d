"""A job's prepared images reach the engine with its prompt (scripted engine, real Valkey)."""

from __future__ import annotations

import time
from pathlib import Path

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.connection import Client, connect
from queueing.cost import estimate
from queueing.images import PreparedImages, reference
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.prequeue import PreQueue
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from queueing.settings import QueueSettings
from tests.workers.support import run_burst, status_is, wait_until
from workers.engines.scripted import ScriptedEngine

VLM = ModelSpec(
    name="m",
    path=Path("."),
    context_length=4096,
    prompt_weight=1,
    output_weight=1,
    image_tokens=10,
)


def image_job(partition: int, images: int) -> JobRecord:
    cost = estimate(VLM, prompt_tokens=13, max_tokens=3)
    return JobRecord(
        id=keys.new_job_id(partition),
        model=VLM.name,
        status=JobStatus.QUEUED,
        job_class=JobClass.STANDARD,
        estimated_units=cost.units,
        created_at=time.time(),
        tenant="local",
        band=cost.band,
        prompt_tokens=13,
        prompt="<image> what is it",
        params=SamplingParams(max_tokens=3),
        images=["data:image/png;base64,AAAA"] * images,
    )


async def test_the_engine_gets_the_prepared_images_in_order(
    queue_url: str, redis_client: Client, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    job, expired = image_job(1, 2), image_job(2, 1)
    for record in (job, expired):
        await store.enqueue(record)
    pre = PreQueue(redis_client, [VLM.name], "pre", queue_settings)
    held = {h.id: h for h in await pre.claim(4) + await pre.claim(4)}
    images = await connect(queue_url, decode_responses=False, load_library=False)
    try:
        prepared = PreparedImages(images, 60)
        await prepared.put(1, "a" * 64, b"first image")
        await prepared.put(1, "b" * 64, b"second image")
        cost = estimate(VLM, prompt_tokens=23, max_tokens=3)
        refs = [reference("a" * 64), reference("b" * 64)]
        assert await pre.handoff(held[job.id], VLM, refs, ["a" * 64, "b" * 64], 23, cost) == 1
        # Handed on, but its image is gone before an LLM worker reads it.
        gone = [reference("c" * 64)]
        assert await pre.handoff(held[expired.id], VLM, gone, [], 13, cost) == 1
    finally:
        await images.aclose()
    engine = ScriptedEngine()
    await run_burst(queue_url, engine, queue_settings, spec=VLM)
    await wait_until(lambda: status_is(store, job.id, JobStatus.SUCCEEDED), 5, "the image job")
    assert engine.images[job.id] == [b"first image", b"second image"]
    failed = await store.get(expired.id, "local")
    assert failed.status is JobStatus.FAILED and "prepared image(s) of the job expired" in (
        failed.error or ""
    )
    assert expired.id not in engine.started


async def test_a_job_whose_images_were_never_prepared_fails_clearly(
    queue_url: str, redis_client: Client, queue_settings: QueueSettings
) -> None:
    record = image_job(0, 1)
    store = JobStore(redis_client, queue_settings)
    await store.enqueue(record.model_copy(update={"images": []}))  # straight to the model queue
    await redis_client.hset(keys.job(record.id), "images", '["data:image/png;base64,AAAA"]')
    engine = ScriptedEngine()
    await run_burst(queue_url, engine, queue_settings, spec=VLM)
    failed = await store.get(record.id, "local")
    assert failed.status is JobStatus.FAILED and "were not prepared" in (failed.error or "")
    assert engine.started == []
