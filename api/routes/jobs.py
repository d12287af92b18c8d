"""``/v1/jobs``: submit a job, look it up, cancel it."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Path, Response

from api.deps import (
    AdmissionDep,
    FallbackDep,
    FilesDep,
    MetricsDep,
    SettingsDep,
    StoreDep,
    TenantDep,
)
from api.images import check_request_images
from api.ratelimit import MeterDep
from api.unicode import check_unicode
from queueing.errors import InvalidRequest
from queueing.jobstore import JobStore
from queueing.schemas import JobCreate, JobPublic, JobRecord, JobStatus
from queueing.serving import PREPARING, WAITING, live_workers, preparing

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=128, description="The job's id")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in {
        400: "Invalid request (e.g. context length exceeded)",
        401: "Missing or unknown API key",
        404: "No such job or model",
        413: "Body too large",
        422: "Malformed body",
        429: "Rate limit or queue full; retry after the Retry-After header",
    }.items()
}


async def _explained(record: JobRecord, store: JobStore) -> JobPublic:
    """The owner's view of ``record``, saying why it is queued: its images are being prepared,
    or no worker serves its model."""
    job = record.public()
    if job.status is JobStatus.QUEUED:
        if preparing(record):
            job.status_detail = PREPARING
        elif not (await live_workers(store.client))[job.model]:
            job.status_detail = WAITING
    return job


def _idempotency_key(body: JobCreate, header: str | None) -> str | None:
    if body.idempotency_key and header and body.idempotency_key != header:
        raise InvalidRequest(
            "the body's idempotency_key and the Idempotency-Key header differ",
            param="idempotency_key",
        )
    return body.idempotency_key or header


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    responses={200: {"description": "Replayed idempotency key: the original job"}, **_ERRORS},
)
async def create_job(
    body: JobCreate,
    response: Response,
    tenant: TenantDep,
    meter: MeterDep,
    store: StoreDep,
    admission: AdmissionDep,
    metrics: MetricsDep,
    settings: SettingsDep,
    files: FilesDep,
    fallback: FallbackDep,
    idempotency_header: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> JobPublic:
    """Queue a job; 202 once it is durable, 200 with the original job on a replayed key."""
    check_unicode(body)
    key = _idempotency_key(body, idempotency_header)
    images = any(m.images for m in body.messages or [])
    route = await fallback.route(admission.spec(body.model).name, body.job_class, images=images)
    spec = admission.spec(route.model)
    await check_request_images(body.messages, spec, settings.preprocess, files, tenant)
    model = spec.name
    partition = store.place(model, tenant, key)
    share = await store.output_share(model, tenant)
    admit = partial(
        admission.admit,
        tenant=tenant,
        partition=partition,
        model=model,
        prompt=body.prompt,
        messages=body.messages,
        params=body.params,
        job_class=body.job_class,
        metadata=body.metadata,
        recent_output_share=share,
        stream_tokens=body.stream_tokens,
    )
    record = await anyio.to_thread.run_sync(admit)
    record.fallback_from = route.fallback_from
    async with meter.admitting(record.model, record.estimated_units):
        job_id = await store.enqueue(record, idempotency_key=key)
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    if job_id != record.id:
        response.status_code = 200
        return await _explained(await store.get(job_id, tenant), store)
    metrics.submitted.labels(model=record.model, job_class=record.job_class.value).inc()
    return await _explained(record, store)


@router.get("/{job_id}", response_model=JobPublic, responses=_ERRORS)
async def get_job(job_id: JobId, tenant: TenantDep, store: StoreDep) -> JobPublic:
    """The job's status (with ``status_detail`` while it waits for a worker) and its result."""
    return await _explained(await store.get(job_id, tenant), store)


@router.delete("/{job_id}", response_model=JobPublic, responses=_ERRORS)
async def cancel_job(job_id: JobId, tenant: TenantDep, store: StoreDep) -> JobPublic:
    """Cancel: a queued job is cancelled at once; a running one is aborted by its worker."""
    return (await store.cancel(job_id, tenant)).public()
