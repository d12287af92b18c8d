"""OpenAI fidelity on the real engine, with the official ``openai`` client (and langchain):
sampling, log probabilities, structured outputs, tools, content parts and roles."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL = "smollm2-135m-instruct"
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
ASK_WEATHER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the weather in Paris?"}
]


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


async def test_penalties_change_the_output(stack: Stack) -> None:
    messages = user("Write a short poem about the sea.")
    penalties: list[dict[str, Any]] = [
        {},
        {"frequency_penalty": 2.0},
        {"presence_penalty": 2.0},
        {"extra_body": {"repetition_penalty": 1.8}},
    ]
    replies = [
        await stack.openai.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=40, temperature=0, **penalty
        )
        for penalty in penalties
    ]
    plain, *penalised = (r.choices[0].message.content for r in replies)
    assert all(text != plain for text in penalised), (plain, penalised)


def check_chat_logprobs(content: list[Any], tokens: int, top: int) -> None:
    assert len(content) == tokens
    for entry in content:
        assert entry.logprob <= 0 and isinstance(entry.token, str)
        assert entry.bytes == list(entry.token.encode())
        assert len(entry.top_logprobs) == top
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob


async def test_chat_logprobs_streamed_and_not(stack: Stack) -> None:
    reply = await stack.openai.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, max_tokens=6, temperature=0, logprobs=True,
        top_logprobs=2,
    )  # fmt: skip
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None and reply.usage is not None
    check_chat_logprobs(logprobs.content, reply.usage.completion_tokens, 2)
    assert "".join(e.token for e in logprobs.content) == reply.choices[0].message.content
    stream = await stack.openai.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, max_tokens=6, temperature=0, logprobs=True,
        top_logprobs=2, stream=True,
    )  # fmt: skip
    streamed: list[Any] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            streamed += chunk.choices[0].logprobs.content
    check_chat_logprobs(streamed, 6, 2)
    assert [e.token for e in streamed] == [e.token for e in logprobs.content]


async def test_completion_logprobs_streamed_and_not(stack: Stack) -> None:
    args: dict[str, Any] = {
        "model": MODEL, "prompt": "The capital of France is", "max_tokens": 5,
        "temperature": 0, "logprobs": 3,
    }  # fmt: skip
    reply = await stack.openai.completions.create(**args)
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs
    assert logprobs.top_logprobs and logprobs.text_offset is not None
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == 5
    assert all(len(top) <= 3 and top for top in logprobs.top_logprobs)
    assert "".join(logprobs.tokens) == reply.choices[0].text
    assert logprobs.text_offset[1] == len(logprobs.tokens[0])
    tokens: list[str] = []
    async for chunk in await stack.openai.completions.create(**args, stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            tokens += chunk.choices[0].logprobs.tokens or []
    assert tokens == logprobs.tokens


async def test_json_object_parses(stack: Stack) -> None:
    reply = await stack.openai.chat.completions.create(
        model=MODEL,
        messages=user("Give me a JSON object with a name and an age."),
        max_tokens=40, temperature=0, response_format={"type": "json_object"},
    )  # fmt: skip
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "stop", content
    assert isinstance(json.loads(content), dict)


async def test_json_schema_reply_validates(stack: Stack) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer"},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    reply = await stack.openai.chat.completions.create(
        model=MODEL, messages=user("Name a big city and its population."), max_tokens=60,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
    )  # fmt: skip
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)


def check_weather_call(calls: list[Any] | None) -> None:
    assert calls, "a tool call"
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


@pytest.mark.parametrize("choice", ["required", "named"])
async def test_forced_tool_calls_streamed_and_not(stack: Stack, choice: str) -> None:
    tool_choice: Any = (
        "required"
        if choice == "required"
        else {"type": "function", "function": {"name": "get_weather"}}
    )
    args: dict[str, Any] = {
        "model": MODEL, "messages": ASK_WEATHER, "tools": [WEATHER], "tool_choice": tool_choice,
        "max_tokens": 60, "temperature": 0, "parallel_tool_calls": False,
    }  # fmt: skip
    reply = await stack.openai.chat.completions.create(**args)
    assert reply.choices[0].finish_reason == "tool_calls", reply.choices[0]
    check_weather_call(reply.choices[0].message.tool_calls)
    calls: list[Any] = []
    finish = None
    async for chunk in await stack.openai.chat.completions.create(**args, stream=True):
        if chunk.choices:
            calls += chunk.choices[0].delta.tool_calls or []
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    check_weather_call(calls)
    assert [c.index for c in calls] == list(range(len(calls)))


async def test_a_follow_up_turn_with_the_tool_result_is_answered(stack: Stack) -> None:
    first = await stack.openai.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required",
        parallel_tool_calls=False, max_tokens=60, temperature=0,
    )  # fmt: skip
    call = (first.choices[0].message.tool_calls or [])[0]
    history: list[ChatCompletionMessageParam] = [
        *ASK_WEATHER,
        first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny", "celsius": 21}'},
    ]
    reply = await stack.openai.chat.completions.create(
        model=MODEL, messages=history, tools=[WEATHER], max_tokens=20, temperature=0
    )
    assert reply.choices[0].finish_reason in {"stop", "length", "tool_calls"}
    assert reply.choices[0].message.content or reply.choices[0].message.tool_calls


async def test_content_parts_and_the_developer_role(stack: Stack) -> None:
    reply = await stack.openai.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "developer", "content": "You answer in one short sentence."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is the capital"},
                    {"type": "text", "text": " of France?"},
                ],
                "name": "ada",
            },
        ],
        max_tokens=20,
        temperature=0,
    )
    assert "Paris" in (reply.choices[0].message.content or "")


async def test_langchain_bind_tools_with_a_named_tool(stack: Stack) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=MODEL, base_url=f"{stack.url}/v1", api_key="unused", max_tokens=40, temperature=0,
        max_retries=0,
    )  # fmt: skip
    bound = llm.bind_tools([WEATHER], tool_choice="get_weather")
    message = await bound.ainvoke("What is the weather in Paris?")
    assert message.tool_calls and message.tool_calls[0]["name"] == "get_weather"
    assert isinstance(message.tool_calls[0]["args"]["city"], str)
