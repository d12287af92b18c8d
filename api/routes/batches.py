"""``/v1/batches``: OpenAI's Batch API. The API only records a batch; ``inferq arq`` runs it."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import BatchesDep, FilesDep, TenantDep
from api.ratelimit import MeterDep
from api.routes.openai import OpenAIRoute
from oaiproto.batch import BatchCreate, batch_object
from queueing import keys
from queueing.batch_record import Batch, BatchStatus, Stop
from queueing.errors import BatchNotCancellable, InvalidRequest

router = APIRouter(prefix="/v1/batches", tags=["batches"], route_class=OpenAIRoute)

WINDOW_S = {"24h": 24 * 3600}
BatchId = Annotated[str, Path(min_length=1, max_length=128, description="The batch's id")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in {
        400: "Invalid request (unknown endpoint, window, or an input file not for batches)",
        401: "Missing or unknown API key",
        404: "No such batch or input file",
        409: "The batch can no longer be cancelled",
        429: "Rate limit: retry after the Retry-After header",
    }.items()
}


@router.post("", responses=_ERRORS)
async def create_batch(
    body: BatchCreate, tenant: TenantDep, files: FilesDep, batches: BatchesDep, meter: MeterDep
) -> dict[str, Any]:
    """Record a batch over an uploaded ``batch`` file; it starts ``validating``.

    Creating it is one request on the tenant's requests bucket; its lines are not metered.
    """
    file = await files.get(tenant, body.input_file_id)
    if file.purpose != "batch":
        raise InvalidRequest(
            f"file '{file.id}' has purpose '{file.purpose}'; a batch's input needs 'batch'",
            param="input_file_id",
        )
    await meter.request()
    now = int(time.time())
    batch = Batch(
        id=keys.new_batch_id(),
        tenant=tenant,
        endpoint=body.endpoint,
        input_file_id=file.id,
        completion_window=body.completion_window,
        status=BatchStatus.VALIDATING,
        created_at=now,
        expires_at=now + WINDOW_S[body.completion_window],
        metadata=body.metadata,
    )
    await batches.create(batch)
    return batch_object(batch)


@router.get("", responses=_ERRORS)
async def list_batches(
    tenant: TenantDep,
    batches: BatchesDep,
    after: Annotated[str | None, Query(description="List after this batch id")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The tenant's batches, newest first."""
    page, more = await batches.page(tenant, after, limit)
    data = [batch_object(batch) for batch in page]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.get("/{batch_id}", responses=_ERRORS)
async def retrieve_batch(
    batch_id: BatchId, tenant: TenantDep, batches: BatchesDep
) -> dict[str, Any]:
    """One batch, with live request counts."""
    return batch_object(await batches.get(batch_id, tenant))


@router.post("/{batch_id}/cancel", responses=_ERRORS)
async def cancel_batch(batch_id: BatchId, tenant: TenantDep, batches: BatchesDep) -> dict[str, Any]:
    """Stop a batch: lines not yet finished are cancelled; finished ones stay in its output."""
    await batches.get(batch_id, tenant)
    moved, status = await batches.move(
        batch_id,
        {BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS},
        BatchStatus.CANCELLING,
        cancelling_at=int(time.time()),
        stop=Stop.CANCELLED.value,
    )
    if not moved and status != BatchStatus.CANCELLING:
        raise BatchNotCancellable(
            f"batch '{batch_id}' is {status} and can no longer be cancelled", param="batch_id"
        )
    return batch_object(await batches.get(batch_id, tenant))
