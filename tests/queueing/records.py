"""Job records built directly, for queue tests that need no tokenizer."""

from __future__ import annotations

import random
import time

from queueing.keys import JobClass, new_job_id
from queueing.schemas import JobRecord, JobStatus, SamplingParams
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
