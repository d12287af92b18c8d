"""Bad input gets the right 4xx and an OpenAI-shaped body that says what is wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.settings import ApiSettings, Settings
from tests.api.support import api_client

JSON = {"content-type": "application/json"}


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error object, after checking the status and the envelope's shape."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"params": {"max_tokens": 5}}, "body: give exactly one of 'prompt' or 'messages'"),
        (
            {"prompt": "a", "messages": [{"role": "user", "content": "b"}]},
            "give exactly one of 'prompt' or 'messages'",
        ),
        (
            {"prompt": "a", "params": {"max_tokens": 0}},
            "body.params.max_tokens: Input should be greater than or equal to 1",
        ),
        ({"prompt": 5}, "body.prompt: Input should be a valid string"),
        ({"prompt": "a", "params": {"temperature": "hot"}}, "body.params.temperature"),
        ({"prompt": "a", "class": "urgent"}, "body.class: Input should be 'interactive'"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "body.messages.0.role"),
        ({"prompt": "a", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
        ([1, 2], "body: must be a JSON object"),
        ({"messages": [{"role": "user", "content": "\udfff"}]}, "lone surrogates"),
        ({"prompt": "a", "metadata": {"\ud800": "x"}}, "lone surrogates"),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "body.messages.0.content: Input should be a valid string; "
            "body.messages.0.content: Input should be a valid list",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "txt": "a"}]}]},
            "body.messages.0.content.0.text: Field required; "
            "body.messages.0.content.0.txt: Extra inputs are not permitted",
        ),
        ({"prompt": "a", "metadata": {"str": 5}}, "body.metadata.str: Input should be a valid"),
    ],
)
async def test_malformed_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, body: Any, says: str
) -> None:
    # json.dumps escapes lone surrogates as \\udxxx, as a client in another language might.
    raw = json.dumps(body).encode()
    response = await client.post("/v1/jobs", content=raw, headers=JSON)
    error = error_of(response, 422)
    assert says in error["message"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"


async def test_param_names_the_first_bad_field(client: httpx.AsyncClient) -> None:
    body = {"prompt": "a", "params": {"max_tokens": 0}}
    assert error_of(await client.post("/v1/jobs", json=body), 422)["param"] == "params.max_tokens"


async def test_invalid_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", content=b'{"prompt": "a",', headers=JSON)
    assert "not valid JSON" in error_of(response, 422)["message"]


async def test_non_json_body_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", content=b"prompt=a")
    assert "Content-Type: application/json" in error_of(response, 422)["message"]


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    error = error_of(await client.post("/v1/jobs", json={"model": "gpt-9", "prompt": "a"}), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "gpt-9" in error["message"]


async def test_context_overflow_is_400(client: httpx.AsyncClient, spec: ModelSpec) -> None:
    long_prompt = {"prompt": "hello " * spec.context_length, "params": {"max_tokens": 16}}
    error = error_of(await client.post("/v1/jobs", json=long_prompt), 400)
    assert error["code"] == "context_length_exceeded" and error["param"] == "prompt"
    assert f"maximum context length is {spec.context_length}" in error["message"]
    too_many = {"messages": [{"role": "user", "content": "hi"}], "params": {"max_tokens": 8192}}
    error = error_of(await client.post("/v1/jobs", json=too_many), 400)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"


async def test_unknown_job_route_and_method(client: httpx.AsyncClient) -> None:
    assert error_of(await client.get("/v1/jobs/job_nope"), 404)["code"] == "job_not_found"
    assert error_of(await client.delete("/v1/jobs/job_nope"), 404)["code"] == "job_not_found"
    assert error_of(await client.get("/v1/jobs/job_nope/events"), 404)["code"] == "job_not_found"
    assert error_of(await client.get("/v2/nothing"), 404)["code"] == "not_found"
    assert error_of(await client.put("/v1/jobs"), 405)["code"] == "method_not_allowed"


async def test_bad_last_event_id_is_422(client: httpx.AsyncClient) -> None:
    job = (await client.post("/v1/jobs", json={"prompt": "a"})).json()
    response = await client.get(f"/v1/jobs/{job['id']}/events", params={"last_event_id": "x"})
    assert "query.last_event_id" in error_of(response, 422)["message"]


async def test_oversized_bodies_are_413(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    settings = api_settings.model_copy(update={"api": ApiSettings(max_body_bytes=2048)})
    big = {"prompt": "x" * 4096}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 512

    async with api_client(settings, queue_url) as client:
        error = error_of(await client.post("/v1/jobs", json=big), 413)
        assert error["code"] == "request_too_large" and "2048 bytes" in error["message"]
        chunked = await client.post("/v1/jobs", content=chunks())
        assert "content-length" not in chunked.request.headers
        assert error_of(chunked, 413)["code"] == "request_too_large"
        small = await client.post("/v1/jobs", json={"prompt": "x" * 1000})
        assert small.status_code == 202
        metrics = (await client.get("/metrics")).text
    assert 'inferq_api_rejections_total{code="request_too_large"} 2.0' in metrics
