"""The OpenAI-compatible endpoints, driven by the official ``openai`` client over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio as aioredis
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionMessageParam

from api.app import create_app
from oaiproto.stream import Diverged, StreamText
from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobResult, JobStatus, Usage
from queueing.settings import Settings
from queueing.workqueue import ClaimedJob, EmitOutcome, WorkQueue
from tests.api.support import serve
from tests.conftest import PARTITIONS
from tests.queueing.listen import heard, next_message

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
async def server(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> AsyncIterator[str]:
    """The API on a real uvicorn server over a flushed queue."""
    async with serve(create_app(api_settings, queue_url)) as base:
        yield base


@pytest.fixture
async def oai(server: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official client, unchanged, pointed at the server (no retries)."""
    async with openai.AsyncOpenAI(
        base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=10
    ) as client:
        yield client


def tokens(text: str) -> list[tuple[str, str]]:
    return [("tokens", json.dumps({"text": text}))]


async def claim_one(worker: WorkQueue, client: aioredis.Redis) -> ClaimedJob:
    """The next job, claimed as soon as it is queued."""
    async with asyncio.timeout(5):
        while True:
            if jobs := await worker.claim(10.0, 1, idle=True):
                return jobs[0]
            await asyncio.sleep(0.02)


async def answer(
    worker: WorkQueue,
    client: aioredis.Redis,
    pieces: Sequence[str],
    *,
    finish_reason: str = "stop",
) -> ClaimedJob:
    """Play a worker: claim the next job, stream ``pieces``, and complete it with usage."""
    job = await claim_one(worker, client)
    for piece in pieces:
        assert await worker.emit(job, tokens(piece)) == EmitOutcome.OWNED
    prompt = job.record.prompt_tokens
    usage = Usage(
        prompt_tokens=prompt, completion_tokens=len(pieces), total_tokens=prompt + len(pieces)
    )
    result = JobResult(text="".join(pieces), finish_reason=finish_reason)
    assert await worker.complete(job, JobStatus.SUCCEEDED, result=result, usage=usage) == 1
    return job


async def test_chat_completion_answers_like_openai(
    oai: openai.AsyncOpenAI, worker: WorkQueue, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    worker_task = asyncio.create_task(answer(worker, redis_client, ["Hel", "lo!"]))
    reply = await oai.chat.completions.create(
        model=spec.name,
        messages=HELLO,
        max_tokens=12,
        temperature=0.2,
    )
    job = await worker_task

    assert reply.id == "chatcmpl-" + job.id.removeprefix("job_")
    assert reply.object == "chat.completion" and reply.model == spec.name
    [choice] = reply.choices
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.content == "Hello!"
    prompt = job.record.prompt_tokens
    assert reply.usage == CompletionUsage(
        prompt_tokens=prompt, completion_tokens=2, total_tokens=prompt + 2
    )
    record = job.record
    assert record.job_class is JobClass.INTERACTIVE and record.tenant == "local"
    assert record.params.max_tokens == 12 and record.params.temperature == 0.2
    assert not record.stream_tokens, "nobody streams a non-streamed completion"
    assert "Say hello" in record.prompt and record.prompt.endswith("assistant\n"), "templated"


async def test_text_completion_and_its_job_header(
    oai: openai.AsyncOpenAI, worker: WorkQueue, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    worker_task = asyncio.create_task(
        answer(worker, redis_client, [" there", " was"], finish_reason="length")
    )
    raw = await oai.completions.with_raw_response.create(
        model=spec.name, prompt="Once upon a time", max_tokens=2, stop="\n"
    )
    job = await worker_task
    reply = raw.parse()

    assert raw.headers["x-inferq-job-id"] == job.id
    assert reply.id == "cmpl-" + job.id.removeprefix("job_") and reply.object == "text_completion"
    [choice] = reply.choices
    assert choice.text == " there was" and choice.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 2
    assert job.record.prompt == "Once upon a time", "a completion prompt is not templated"
    assert job.record.params.stop == ["\n"] and job.record.params.max_tokens == 2


async def test_streaming_chat_reassembles_and_ends_with_usage(
    oai: openai.AsyncOpenAI, worker: WorkQueue, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    pieces = ["The", " sky", " is", " blue."]
    worker_task = asyncio.create_task(answer(worker, redis_client, pieces))
    stream = await oai.chat.completions.create(
        model=spec.name,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    job = await worker_task

    first = chunks[0].choices[0]
    assert first.delta.role == "assistant" and first.delta.content == ""
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "The sky is blue."
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * 5 + ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 4
    assert last.usage.total_tokens == job.record.prompt_tokens + 4
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.id for c in chunks} == {"chatcmpl-" + job.id.removeprefix("job_")}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert job.record.stream_tokens


async def test_streamed_completion_is_framed_exactly_as_openai_frames_it(
    server: str, worker: WorkQueue, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    worker_task = asyncio.create_task(
        answer(worker, redis_client, ["Once", " more"], finish_reason="length")
    )
    body = {"model": spec.name, "prompt": "Again", "max_tokens": 2, "stream": True}
    async with (
        httpx.AsyncClient(base_url=server, timeout=10) as http,
        http.stream("POST", "/v1/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join([part async for part in response.aiter_text()])
    await worker_task

    assert text.endswith("data: [DONE]\n\n") and "\r" not in text
    frames = [f for f in text.split("\n\n") if f and not f.startswith(":")]  # ":" = keep-alive
    assert all(f.startswith("data: ") and "\n" not in f for f in frames), "data-only events"
    data: list[dict[str, Any]] = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    assert [d["choices"][0]["text"] for d in data] == ["Once", " more", ""]
    assert [d["choices"][0]["finish_reason"] for d in data] == [None, None, "length"]
    assert all(d["object"] == "text_completion" and "usage" not in d for d in data)


async def test_a_restarted_job_streams_each_piece_once(
    oai: openai.AsyncOpenAI, worker: WorkQueue, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    stream = await oai.completions.create(model=spec.name, prompt="Count", stream=True)
    job = await claim_one(worker, redis_client)
    await worker.emit(job, tokens("one two"))
    assert await worker.release(job, "worker restarting", graceful=True)
    job = await claim_one(worker, redis_client)  # the same output again, then more
    for piece in ["one", " two", " three"]:
        await worker.emit(job, tokens(piece))
    await worker.complete(job, JobStatus.SUCCEEDED, result=JobResult(text="one two three"))
    texts = [chunk.choices[0].text async for chunk in stream]
    assert texts == ["one two", " three", ""]


async def test_models_are_listed_in_openai_format(oai: openai.AsyncOpenAI, spec: ModelSpec) -> None:
    models = [model async for model in oai.models.list()]
    assert [m.id for m in models] == [spec.name]
    assert models[0].object == "model" and models[0].owned_by == "inferq"
    assert models[0].created > 0
    assert (await oai.models.retrieve(spec.name)).id == spec.name
    with pytest.raises(openai.NotFoundError) as missing:
        await oai.models.retrieve("gpt-9")
    assert missing.value.code == "model_not_found"


async def test_bad_requests_are_openai_errors_and_queue_nothing(
    oai: openai.AsyncOpenAI, server: str, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        await oai.chat.completions.create(model="gpt-9", messages=HELLO)
    assert unknown.value.code == "model_not_found" and unknown.value.param == "model"

    with pytest.raises(openai.BadRequestError) as overflow:
        await oai.completions.create(model=spec.name, prompt="Hi", max_tokens=spec.context_length)
    assert overflow.value.code == "context_length_exceeded"
    assert f"maximum context length is {spec.context_length}" in overflow.value.message

    with pytest.raises(openai.BadRequestError) as hot:
        await oai.completions.create(model=spec.name, prompt="Hi", temperature=3)
    assert hot.value.param == "temperature" and hot.value.type == "invalid_request_error"

    with pytest.raises(openai.BadRequestError) as many:
        await oai.chat.completions.create(model=spec.name, messages=HELLO, n=2)
    assert many.value.param == "n"

    with pytest.raises(openai.BadRequestError) as nameless:
        await oai.completions.create(model="", prompt="Hi")
    assert nameless.value.param == "model", "no silent fallback to the default model"

    # json.dumps escapes a lone surrogate as \\udfff, as a client in another language might.
    raw = json.dumps({"model": spec.name, "messages": [{"role": "user", "content": "\udfff"}]})
    async with httpx.AsyncClient(base_url=server) as http:
        surrogate = await http.post(
            "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
    assert surrogate.status_code == 400 and "lone surrogates" in surrogate.text
    assert [key async for key in redis_client.scan_iter("iq:job:*")] == []


async def test_a_full_queue_is_a_rate_limit_error(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    queue = api_settings.queue.model_copy(update={"max_queued_units": 0.3, "retry_after_s": 7})
    settings = api_settings.model_copy(update={"queue": queue})
    async with serve(create_app(settings, queue_url)) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(PARTITIONS):  # the ceiling holds per partition; an empty one takes a job
                first = await http.post("/v1/jobs", json={"prompt": "Hello"})
                assert first.status_code == 202
        async with openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0) as oai:
            with pytest.raises(openai.RateLimitError) as full:
                await oai.completions.create(model=spec.name, prompt="Hello", max_tokens=256)
    assert full.value.code == "queue_full"
    assert full.value.response.headers["retry-after"] == "7"


async def test_a_failed_or_cancelled_job_is_an_openai_error(
    oai: openai.AsyncOpenAI, worker: WorkQueue, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    async def fail(error: str) -> None:
        job = await claim_one(worker, redis_client)
        assert await worker.complete(job, JobStatus.FAILED, error=error) == 1

    failing = asyncio.create_task(fail("engine exploded"))
    with pytest.raises(openai.InternalServerError) as plain:
        await oai.chat.completions.create(model=spec.name, messages=HELLO)
    await failing
    assert plain.value.code == "job_failed" and "engine exploded" in plain.value.message

    failing = asyncio.create_task(fail("out of memory"))
    stream = await oai.completions.create(model=spec.name, prompt="Hi", stream=True)
    with pytest.raises(openai.APIError) as streamed:
        async for _ in stream:
            pass
    await failing
    assert "out of memory" in streamed.value.message

    async def cancel_by_owner() -> None:
        job = await claim_one(worker, redis_client)
        await JobStore(redis_client, worker.settings).cancel(job.id, "local")  # DELETE /v1/jobs
        assert await worker.complete(job, JobStatus.CANCELLED, error="cancelled by the user") == 1

    cancelling = asyncio.create_task(cancel_by_owner())
    with pytest.raises(openai.ConflictError) as cancelled:
        await oai.completions.create(model=spec.name, prompt="Hi")
    await cancelling
    assert cancelled.value.code == "job_cancelled"
    assert "cancelled by the user" in cancelled.value.message
    assert cancelled.value.response.headers["x-should-retry"] == "false", "no automatic resend"


async def test_a_streaming_client_that_hangs_up_cancels_its_running_job(
    oai: openai.AsyncOpenAI, worker: WorkQueue, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    async with heard(redis_client, worker.cancel_channels()) as cancels:
        stream = await oai.chat.completions.create(
            model=spec.name,
            messages=HELLO,
            stream=True,
        )
        job = await claim_one(worker, redis_client)
        await worker.emit(job, tokens("Hel"))
        chunks = [await anext(stream), await anext(stream)]
        assert chunks[1].choices[0].delta.content == "Hel"
        await stream.close()

        assert await next_message(cancels) == job.id
    assert (await JobStore(redis_client, worker.settings).get(job.id, "local")).cancel
    assert await worker.emit(job, tokens("lo")) == EmitOutcome.CANCELLED, "the engine aborts"
    assert await worker.complete(job, JobStatus.CANCELLED, error="client went away") == 1


async def test_a_waiting_client_that_hangs_up_cancels_its_queued_job(
    server: str, worker: WorkQueue, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    body = {"model": spec.name, "messages": HELLO}
    events = [keys.events_channel(p) for p in range(PARTITIONS)]
    async with (
        heard(redis_client, events) as notices,
        heard(redis_client, worker.wake_channels()) as wakes,
    ):
        async with httpx.AsyncClient(base_url=server, timeout=10) as http:
            request = asyncio.create_task(http.post("/v1/chat/completions", json=body))
            await next_message(wakes)  # the job is queued
            request.cancel()  # the client gives up: httpx closes the connection
            with pytest.raises(asyncio.CancelledError):
                await request
        job_id = await next_message(notices)  # its cancellation
    record = await JobStore(redis_client, worker.settings).get(job_id, "local")
    assert record.status is JobStatus.CANCELLED
    assert await worker.claim(10.0, 1, idle=True) == [], "nothing is left to run"


def test_stream_text_sends_a_replayed_attempt_once() -> None:
    text = StreamText()
    assert text.add("Hello") == "Hello" and text.add(" wor") == " wor"
    text.restart()
    assert [text.add(p) for p in ["Hel", "lo w", "orld"]] == ["", "", "ld"]
    assert text.finish("Hello world!") == "!" and text.sent == "Hello world!"
    text.restart()
    with pytest.raises(Diverged):
        text.add("Goodbye")
    other = StreamText()
    other.add("ab")
    with pytest.raises(Diverged):
        other.finish("ac")
