"""OpenAI-compatible ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models``.

Each completion request becomes an interactive job on the same queues as ``/v1/jobs``; the
route waits for it (or streams it) through the event hub, and cancels it if the client leaves.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sse_starlette import EventSourceResponse

from api.deps import (
    AdmissionDep,
    CatalogueDep,
    FallbackDep,
    FilesDep,
    HubDep,
    MetricsDep,
    SettingsDep,
    StoreDep,
    TenantDep,
    get_tenant,
)
from api.errors import count_rejection, describe
from api.images import check_request_images
from api.openai_jobs import JobWatch
from api.ratelimit import MeterDep
from api.unicode import check_unicode
from oaiproto.errors import error_body
from oaiproto.format import Head, Kind, completion, failure, model_card
from oaiproto.requests import ChatCompletionRequest, CompletionRequest
from oaiproto.stream import openai_chunks
from queueing.keys import JobClass
from queueing.schemas import JobStatus, SamplingParams

JOB_HEADER = "X-Inferq-Job-Id"
CLIENT_CLOSED = 499
DEFAULT_MAX_TOKENS = SamplingParams().max_tokens


class OpenAIRoute(APIRoute):
    """Answers a malformed body with 400, as OpenAI does (FastAPI's default is 422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, turning validation errors into OpenAI's 400."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                message, param = describe(exc.errors())
                count_rejection(request.app, "invalid_request")
                body = error_body(message, "invalid_request_error", "invalid_request", param)
                return JSONResponse(body, status_code=400)

        return route


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in {
        400: "Invalid parameters, or prompt plus max_tokens exceed the context length",
        401: "Missing or unknown API key",
        404: "No such model",
        409: "The job was cancelled",
        413: "Body too large",
        429: "Rate limit or queue full; retry after the Retry-After header",
        500: "The job failed",
    }.items()
}
_STREAMED: dict[str, Any] = {"text/event-stream": {}, "application/json": {}}


@dataclass(frozen=True)
class Caller:
    """What a completion route needs: the request, its tenant, and the app's objects."""

    request: Request
    tenant: TenantDep
    meter: MeterDep
    store: StoreDep
    admission: AdmissionDep
    hub: HubDep
    settings: SettingsDep
    metrics: MetricsDep
    files: FilesDep
    fallback: FallbackDep


CallerDep = Annotated[Caller, Depends(Caller)]


async def _chunks(
    watch: JobWatch, head: Head, body: ChatCompletionRequest | CompletionRequest, caller: Caller
) -> AsyncIterator[bytes]:
    """The job's stream; counted as an open stream, and a client that leaves cancels it."""
    clients = caller.metrics.sse_clients
    clients.inc()
    try:
        async with contextlib.aclosing(watch.events()) as events:
            async for piece in openai_chunks(
                events,
                watch.latest,
                head,
                include_usage=body.include_usage,
                buffered=body.buffered,
            ):
                yield piece
    finally:
        clients.dec()
        await watch.abandon()


async def _complete(
    kind: Kind, body: ChatCompletionRequest | CompletionRequest, caller: Caller
) -> Response:
    """Queue the request as an interactive job, then stream it or wait for its end."""
    body.check_fields()
    check_unicode(body)
    chat = body if isinstance(body, ChatCompletionRequest) else None
    images = chat is not None and any(m.images for m in chat.messages)
    route = await caller.fallback.route(
        caller.admission.spec(body.model).name, JobClass.INTERACTIVE, images=images
    )
    spec = caller.admission.spec(route.model)
    if chat:
        preprocess = caller.settings.preprocess
        await check_request_images(chat.messages, spec, preprocess, caller.files, caller.tenant)
    partition = caller.store.place(spec.name, caller.tenant)
    share = await caller.store.output_share(spec.name, caller.tenant)
    admit = partial(
        caller.admission.admit,
        tenant=caller.tenant,
        partition=partition,
        model=route.model,
        prompt=body.prompt if isinstance(body, CompletionRequest) else None,
        messages=chat.messages if chat else None,
        params=body.sampling(DEFAULT_MAX_TOKENS),
        job_class=JobClass.INTERACTIVE,
        metadata=body.metadata,
        recent_output_share=share,
        stream_tokens=bool(body.stream) and not body.buffered,
        tools=chat.tool_dicts if chat else None,
    )
    record = await anyio.to_thread.run_sync(admit)
    record.fallback_from = route.fallback_from
    async with caller.meter.admitting(record.model, record.estimated_units):
        await caller.store.enqueue(record)
    caller.metrics.submitted.labels(model=record.model, job_class=record.job_class.value).inc()
    head = Head.of(kind, record)
    ping_s = caller.settings.api.sse_ping_s
    watch = JobWatch(caller.store, caller.hub, record, recheck_s=ping_s)
    headers = {JOB_HEADER: record.id}
    if body.stream:
        return EventSourceResponse(
            _chunks(watch, head, body, caller),
            headers=headers,
            ping=ping_s,
            sep="\n",
            client_close_handler_callable=watch.on_disconnect,
        )
    finished = await watch.wait(caller.request)
    if finished is None:
        return Response(status_code=CLIENT_CLOSED)
    if finished.status is JobStatus.SUCCEEDED:
        return JSONResponse(completion(head, finished), headers=headers)
    status, error = failure(finished)
    if finished.status is JobStatus.CANCELLED:
        headers["x-should-retry"] = "false"
    return JSONResponse(error, status_code=status, headers=headers)


@router.post(
    "/chat/completions",
    response_class=Response,
    responses={200: {"description": "A chat completion", "content": _STREAMED}, **_ERRORS},
)
async def chat_completions(body: ChatCompletionRequest, caller: CallerDep) -> Response:
    """Chat: the messages are rendered with the model's chat template and run as a job."""
    return await _complete(Kind.CHAT, body, caller)


@router.post(
    "/completions",
    response_class=Response,
    responses={200: {"description": "A text completion", "content": _STREAMED}, **_ERRORS},
)
async def completions(body: CompletionRequest, caller: CallerDep) -> Response:
    """Text completion of a raw prompt, run as a job."""
    return await _complete(Kind.TEXT, body, caller)


@router.get("/models", dependencies=[Depends(get_tenant)], responses=_ERRORS)
async def list_models(catalogue: CatalogueDep, settings: SettingsDep) -> dict[str, Any]:
    """The models this deployment serves (those its pools run)."""
    served = [name for name in settings.served_models() if name in catalogue.models]
    return {"object": "list", "data": [model_card(catalogue.models[name]) for name in served]}


@router.get("/models/{model_id:path}", dependencies=[Depends(get_tenant)], responses=_ERRORS)
async def retrieve_model(
    model_id: Annotated[str, Path(description="The model's id")], catalogue: CatalogueDep
) -> dict[str, Any]:
    """One model, or 404 ``model_not_found``."""
    return model_card(catalogue.get(model_id))
