"""The preprocess worker: real images through a real process pool, real Valkey."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

import pytest
from PIL import Image

from queueing import keys
from queueing.catalogue import Catalogue, ModelSpec
from queueing.connection import Client, connect
from queueing.cost import estimate
from queueing.images import PreparedImages, digest_of, is_reference
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from queueing.settings import PreprocessSettings, QueueSettings, Settings, WorkerSettings
from queueing.workqueue import WorkQueue
from tests.preprocess.images import encode, png_header_only, scene
from tests.workers.support import running_preprocess, wait_until

VLM = ModelSpec(
    name="v",
    path=Path("."),
    context_length=4096,
    prompt_weight=1,
    output_weight=1,
    image_tokens=10,
)


CATALOGUE = Catalogue({VLM.name: VLM})


def pre_settings(queue_settings: QueueSettings) -> Settings:
    """One pool process, short leases and waits."""
    return Settings(
        queue=queue_settings,
        worker=WorkerSettings(block_ms=500, renew_every_ms=250),
        preprocess=PreprocessSettings(processes=1),
    )


def data_url(data: bytes, media_type: str = "image/jpeg") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image_job(partition: int, *images: str) -> JobRecord:
    prompt_tokens = 3 + len(images) * VLM.image_tokens
    cost = estimate(VLM, prompt_tokens=prompt_tokens, max_tokens=4)
    return JobRecord(
        id=keys.new_job_id(partition),
        model=VLM.name,
        status=JobStatus.QUEUED,
        job_class=JobClass.STANDARD,
        estimated_units=cost.units,
        created_at=time.time(),
        tenant="local",
        band=cost.band,
        prompt_tokens=prompt_tokens,
        prompt="<image> " * len(images) + "what is it?",
        params=SamplingParams(max_tokens=4),
        images=list(images),
    )


async def settled(store: JobStore, job_id: str) -> JobRecord:
    """The job once it has left the preprocess tier (handed on or finished)."""

    async def out() -> bool:
        record = await store.get(job_id, "local")
        return record.status is not JobStatus.QUEUED or not (record.stream or "").startswith(
            "iq:pre:"
        )

    await wait_until(out, 30, f"job {job_id} to leave the preprocess tier")
    return await store.get(job_id, "local")


async def test_an_image_is_prepared_once_and_its_jobs_handed_on(
    queue_url: str, redis_client: Client, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    photo = data_url(encode(scene(1600, 1200), "JPEG", quality=92))
    async with running_preprocess(queue_url, pre_settings(queue_settings), CATALOGUE) as worker:
        first, second = image_job(0, photo), image_job(3, photo, photo)
        await store.enqueue(first)
        moved = await settled(store, first.id)
        await store.enqueue(second)
        moved_too = await settled(store, second.id)
        metrics = worker.preprocess.metrics
        assert (metrics.count("prepared"), metrics.count("reused")) == (1.0, 2.0)
        assert metrics.count("invalid") == 0.0
    for record, job in ((moved, first), (moved_too, second)):
        assert record.status is JobStatus.QUEUED and all(map(is_reference, record.images))
        assert record.stream == keys.waiting(
            "v", keys.partition_of(job.id), JobClass.STANDARD, record.band
        )
        assert (
            record.prompt_tokens == job.prompt_tokens
            and record.estimated_units == job.estimated_units
        )
    assert moved.images == moved_too.images[:1] == moved_too.images[1:]
    images = await connect(queue_url, decode_responses=False, load_library=False)
    try:
        [jpeg] = await PreparedImages(images, 600).read(first.id, moved.images)
        assert await images.ttl(keys.prepared_image(3, digest_of(moved.images[0]))) > 500
    finally:
        await images.aclose()
    with Image.open(io.BytesIO(jpeg)) as prepared:
        assert (prepared.format, prepared.size) == ("JPEG", (512, 384))
    llm = WorkQueue(redis_client, VLM, "llm", queue_settings)
    claimed: list[str] = []
    for _ in range(queue_settings.partitions):
        claimed += [job.id for job in await llm.claim(100.0, 8, idle=True)]
    assert sorted(claimed) == sorted([first.id, second.id])


@pytest.mark.parametrize("queue_url", ["single"], indirect=True)
async def test_bad_images_fail_their_jobs_and_the_worker_keeps_serving(
    queue_url: str, redis_client: Client, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    jpeg = encode(scene(640, 480), "JPEG")
    bad = {
        "truncated": (data_url(jpeg[: len(jpeg) // 2]), "truncated or corrupt"),
        "not an image": (data_url(b"hello, world", "image/png"), "not an image"),
        "bomb": (data_url(png_header_only(30_000, 30_000), "image/png"), "decompression bomb"),
        "format": (data_url(encode(scene(64, 48), "BMP"), "image/bmp"), "BMP is not allowed"),
        "url": ("https://example.com/cat.jpg", "fetching image URLs is turned off"),
        "file": ("file-nope", "is not a data: URL"),
    }
    async with running_preprocess(queue_url, pre_settings(queue_settings), CATALOGUE) as worker:
        jobs = {name: image_job(1, source) for name, (source, _) in bad.items()}
        for job in jobs.values():
            await store.enqueue(job)
        for name, job in jobs.items():
            failed = await settled(store, job.id)
            assert failed.status is JobStatus.FAILED, name
            assert failed.error is not None and "image 1 of 1: " in failed.error, name
            assert bad[name][1] in failed.error, (name, failed.error)
        good = image_job(2, data_url(jpeg))
        await store.enqueue(good)
        assert (await settled(store, good.id)).status is JobStatus.QUEUED
        assert worker.failure is None
        assert worker.preprocess.metrics.count("invalid") == len(bad)


@pytest.mark.parametrize("queue_url", ["single"], indirect=True)
async def test_with_no_model_that_takes_images_it_idles_and_stops(
    queue_url: str, redis_client: Client, queue_settings: QueueSettings
) -> None:
    text_only = ModelSpec(
        name="t", path=Path("."), context_length=100, prompt_weight=1, output_weight=1
    )
    settings = pre_settings(queue_settings)
    async with running_preprocess(queue_url, settings, Catalogue({"t": text_only})) as worker:
        await asyncio.sleep(0.3)
        assert worker.queue.lanes == [] and worker.failure is None
    assert worker.runs == {}
