"""Stream shaping: a buffered answer comes whole, with its tool calls and log probabilities."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from oaiproto.format import Head, Kind
from oaiproto.stream import openai_chunks
from queueing.events import JobEvent
from queueing.schemas import (
    FunctionCall,
    JobRecord,
    JobResult,
    JobStatus,
    TokenLogprob,
    ToolCall,
)
from tests.queueing.records import record

CALL = ToolCall(id="call_1", function=FunctionCall(name="f", arguments="{}"))


async def events(result: JobResult) -> AsyncIterator[JobEvent]:
    yield JobEvent("1-0", "tokens", json.dumps({"text": "ignored"}))
    yield JobEvent("2-0", "result", result.model_dump_json())
    yield JobEvent("3-0", "status", json.dumps({"status": JobStatus.SUCCEEDED.value}))


async def chunks(kind: Kind, result: JobResult) -> list[dict[str, object]]:
    job = record()

    async def latest() -> JobRecord:
        return job

    out = []
    async for raw in openai_chunks(
        events(result), latest, Head.of(kind, job), include_usage=False, buffered=True
    ):
        if raw.startswith(b"data: {"):
            out.append(json.loads(raw.removeprefix(b"data: ")))
    return out


async def test_a_buffered_chat_stream_carries_tool_calls_and_logprobs_whole() -> None:
    logprob = TokenLogprob(token="{}", logprob=-0.5)
    result = JobResult(text="", finish_reason="tool_calls", tool_calls=[CALL], logprobs=[logprob])
    _, whole, final = await chunks(Kind.CHAT, result)
    choice = whole["choices"][0]  # type: ignore[index]
    assert choice["delta"]["tool_calls"] == [{"index": 0, **CALL.model_dump()}]
    assert choice["logprobs"]["content"][0]["token"] == "{}"
    assert final["choices"][0]["finish_reason"] == "tool_calls"  # type: ignore[index]


async def test_a_buffered_completion_stream_has_logprob_columns() -> None:
    logprobs = [TokenLogprob(token=t, logprob=-1.0) for t in ["Pa", "ris"]]
    [whole, _] = await chunks(Kind.TEXT, JobResult(text="Paris", logprobs=logprobs))
    choice = whole["choices"][0]  # type: ignore[index]
    assert choice["text"] == "Paris"
    assert choice["logprobs"]["tokens"] == ["Pa", "ris"]
    assert choice["logprobs"]["text_offset"] == [0, 2]
