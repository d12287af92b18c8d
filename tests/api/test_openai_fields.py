"""Each field inferq refuses is answered with a 400 that names it, before anything is queued."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from oaiproto.fields import CHAT_REFUSED, COMPLETION_REFUSED
from queueing.catalogue import ModelSpec

CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
TEXT: dict[str, Any] = {"prompt": "hi"}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


async def refused(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize(
    ("path", "base", "field"),
    [("/v1/chat/completions", CHAT, f) for f in CHAT_REFUSED]
    + [("/v1/completions", TEXT, f) for f in COMPLETION_REFUSED],
)
async def test_a_refused_field_is_a_400_naming_it(
    client: httpx.AsyncClient, spec: ModelSpec, path: str, base: dict[str, Any], field: str
) -> None:
    error = await refused(client, path, {**base, "model": spec.name, field: "asked-for"})
    assert error["param"] == field and error["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("extra", "param", "says"),
    [
        ({"n": 2}, "n", "n must be 1"),
        ({"top_p_typo": 1}, "top_p_typo", "unknown parameter"),
        ({"top_logprobs": 2}, "top_logprobs", "needs logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed when"),
        ({"tool_choice": "required"}, "tool_choice", "needs tools"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
            "no tool named 'x'",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format", "needs its json_schema"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": 5}},
                }
            },
            "response_format",
            "not a valid JSON schema",
        ),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"required": 1}}}
                ]
            },
            "tools",
            "not a valid JSON schema",
        ),
        ({"logit_bias": {"99999999": 1}}, "logit_bias", "not in this model's vocabulary"),
        ({"logit_bias": {"cat": 1}}, "logit_bias", "'cat' is not one"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages.0.content.0.image_url.url",
            "messages.0.content.0.image_url.url: Field required",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}},
                        ],
                    }
                ]
            },
            "messages.0.content.1",
            "takes no images",
        ),
    ],
)
async def test_chat_requests_that_cannot_be_served_are_named(
    client: httpx.AsyncClient, spec: ModelSpec, extra: dict[str, Any], param: str, says: str
) -> None:
    error = await refused(client, "/v1/chat/completions", {**CHAT, "model": spec.name, **extra})
    assert error["param"] == param and says in error["message"], error
