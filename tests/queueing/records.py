"""Job records built directly, for queue tests that need no tokenizer."""

from __future__ import annotations

import random
import time

from queueing.keys import JobClass, new_job_id
from queueing.schemas import JobRecord, JobStatus, SamplingParams
from queueing.workqueue import ClaimedJob, WorkQueue
from tests.conftest import PARTITIONS


def record(
    model: str = "m",
    job_class: JobClass = JobClass.STANDARD,
    band: int = 0,
    units: float = 0.05,
    tenant: str = "local",
    partition: int | None = None,
) -> JobRecord:
    """A queued job of the given class, band and cost, in ``partition`` (random by default)."""
    return JobRecord(
        id=new_job_id(random.randrange(PARTITIONS) if partition is None else partition),
        model=model,
        status=JobStatus.QUEUED,
        job_class=job_class,
        estimated_units=units,
        created_at=time.time(),
        tenant=tenant,
        band=band,
        prompt_tokens=3,
        prompt="hello there",
        params=SamplingParams(max_tokens=8),
    )


async def claim_all(wq: WorkQueue, room: float, max_count: int) -> list[ClaimedJob]:
    """Claim again and again (as a worker with room does) until nothing more comes or fits."""
    claimed: list[ClaimedJob] = []
    while len(claimed) < max_count:
        left = room - sum(job.record.estimated_units for job in claimed)
        got = await wq.claim(left, max_count - len(claimed), idle=not claimed)
        if not got:
            break
        claimed += got
    return claimed
