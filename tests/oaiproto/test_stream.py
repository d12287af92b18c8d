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


async def replayed(entries: list[TokenLogprob]) -> AsyncIterator[JobEvent]:
    def tokens(entry: TokenLogprob) -> str:
        return json.dumps({"text": entry.token, "logprobs": [entry.model_dump()]})

    running = json.dumps({"status": JobStatus.RUNNING.value})
    yield JobEvent("1-0", "status", running)
    yield JobEvent("2-0", "tokens", tokens(entries[0]))
    yield JobEvent("3-0", "status", running)  # a second attempt replays the first token
    for i, entry in enumerate(entries):
        yield JobEvent(f"{4 + i}-0", "tokens", tokens(entry))
    result = JobResult(text="".join(e.token for e in entries), logprobs=entries)
    yield JobEvent("8-0", "result", result.model_dump_json())
    yield JobEvent("9-0", "status", json.dumps({"status": JobStatus.SUCCEEDED.value}))


async def test_streamed_logprobs_follow_their_tokens_once_across_a_restart() -> None:
    entries = [TokenLogprob(token=t, logprob=-1.0) for t in ["Pa", "ris"]]
    job = record()

    async def latest() -> JobRecord:
        return job

    out = []
    head = Head.of(Kind.TEXT, job)
    async for raw in openai_chunks(replayed(entries), latest, head, include_usage=False):
        if raw.startswith(b"data: {"):
            out.append(json.loads(raw.removeprefix(b"data: "))["choices"][0])
    assert [c["text"] for c in out] == ["Pa", "ris", ""]
    assert [c["logprobs"] and c["logprobs"]["tokens"] for c in out] == [["Pa"], ["ris"], None]
    assert out[1]["logprobs"]["text_offset"] == [2]
