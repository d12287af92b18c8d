"""OpenAI-compatible ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models``.

Each completion request becomes an interactive job on the same queues as ``/v1/jobs``; the
route waits for it (or streams it) through the event hub, and cancels it if the client leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
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
    HubDep,
    MetricsDep,
    SettingsDep,
    StoreDep,
    TenantDep,
    get_tenant,
)
from api.errors import count_rejection, describe, error_body
from api.openai_format import Head, Kind, completion, failure, model_card
from api.openai_jobs import JobWatch
from api.openai_stream import openai_chunks
from api.unicode import check_unicode
from queueing.keys import JobClass
from queueing.openai_schemas import ChatCompletionRequest, CompletionRequest
from queueing.schemas import ChatMessage, JobStatus, SamplingParams

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
        429: "Queue full; retry after the Retry-After header",
        500: "The job failed",
    }.items()
}
_STREAMED: dict[str, Any] = {"text/event-stream": {}, "application/json": {}}


@dataclass(frozen=True)
class Caller:
    """What a completion route needs: the request, its tenant, and the app's objects."""

    request: Request
    tenant: TenantDep
    store: StoreDep
    admission: AdmissionDep
    hub: HubDep
    settings: SettingsDep
    metrics: MetricsDep


CallerDep = Annotated[Caller, Depends(Caller)]


async def _complete(
    kind: Kind,
    body: ChatCompletionRequest | CompletionRequest,
    caller: Caller,
    *,
    prompt: str | None = None,
    messages: list[ChatMessage] | None = None,
) -> Response:
    """Queue the request as an interactive job, then stream it or wait for its end."""
    check_unicode(body)
    spec = caller.admission.spec(body.model)
    partition = caller.store.place(spec.name, caller.tenant)
    share = await caller.store.output_share(spec.name, caller.tenant)
    admit = partial(
        caller.admission.admit,
        tenant=caller.tenant,
        partition=partition,
        model=body.model,
        prompt=prompt,
        messages=messages,
        params=body.sampling(DEFAULT_MAX_TOKENS),
        job_class=JobClass.INTERACTIVE,
        metadata={"user": body.user} if body.user else {},
        recent_output_share=share,
        stream_tokens=body.stream,
    )
    record = await anyio.to_thread.run_sync(admit)
    await caller.store.enqueue(record)
    caller.metrics.submitted.labels(model=record.model, job_class=record.job_class.value).inc()
    head = Head.of(kind, record)
    ping_s = caller.settings.api.sse_ping_s
    watch = JobWatch(caller.store, caller.hub, record, recheck_s=ping_s)
    headers = {JOB_HEADER: record.id}
    if body.stream:
        chunks = openai_chunks(
            watch, head, include_usage=body.include_usage, clients=caller.metrics.sse_clients
        )
        return EventSourceResponse(
            chunks,
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
    return await _complete(Kind.CHAT, body, caller, messages=body.messages)


@router.post(
    "/completions",
    response_class=Response,
    responses={200: {"description": "A text completion", "content": _STREAMED}, **_ERRORS},
)
async def completions(body: CompletionRequest, caller: CallerDep) -> Response:
    """Text completion of a raw prompt, run as a job."""
    return await _complete(Kind.TEXT, body, caller, prompt=body.prompt)


@router.get("/models", dependencies=[Depends(get_tenant)], responses=_ERRORS)
async def list_models(catalogue: CatalogueDep) -> dict[str, Any]:
    """The models this deployment serves."""
    cards = [model_card(catalogue.models[name]) for name in catalogue.names()]
    return {"object": "list", "data": cards}


@router.get("/models/{model_id:path}", dependencies=[Depends(get_tenant)], responses=_ERRORS)
async def retrieve_model(
    model_id: Annotated[str, Path(description="The model's id")], catalogue: CatalogueDep
) -> dict[str, Any]:
    """One model, or 404 ``model_not_found``."""
    return model_card(catalogue.get(model_id))
