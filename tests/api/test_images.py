"""Image parts at the API: a vision model's job holds its images in order; what can be told
without decoding is refused with a 4xx that names the part."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from queueing import cost
from queueing.catalogue import ModelSpec
from queueing.jobstore import JobStore
from queueing.settings import ImageFetchSettings, PreprocessSettings, QueueSettings, Settings
from tests.api.support import api_client

# The API checks a source's signature only (decoding is the preprocess tier's): these bytes
# start like a PNG.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
QUESTION = {"type": "text", "text": "What is in the picture?"}


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def chat(model: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": [*parts, QUESTION]}]}


@pytest.fixture
async def vision_client(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with small image limits, and fetching on for images.example.com only."""
    preprocess = PreprocessSettings(
        max_bytes=1000,
        max_images=2,
        fetch=ImageFetchSettings(enabled=True, allow_hosts=["images.example.com"]),
    )
    settings = api_settings.model_copy(update={"preprocess": preprocess})
    async with api_client(settings, queue_url) as http:
        yield http


async def upload(client: httpx.AsyncClient, data: bytes, purpose: str = "vision") -> str:
    made = await client.post(
        "/v1/files", files={"file": ("pic.png", data)}, data={"purpose": purpose}
    )
    assert made.status_code == 200, made.text
    file_id: str = made.json()["id"]
    return file_id


async def test_a_vision_job_holds_its_images_in_order_and_pays_for_them(
    vision_client: httpx.AsyncClient,
    redis_client: aioredis.Redis,
    queue_settings: QueueSettings,
    vlm: ModelSpec,
) -> None:
    file_id = await upload(vision_client, PNG)
    sources = [data_url(PNG), file_id, "https://images.example.com/cat.jpg"]
    body = chat(vlm.name, *map(image, sources))
    body["messages"][0]["content"] = [image(sources[0]), QUESTION, image(sources[1])]
    body["messages"].append({"role": "user", "content": [image(sources[2])]})
    body["params"] = {"max_tokens": 10}
    response = await vision_client.post("/v1/jobs", json=body)
    assert response.status_code == 400  # three images: the limit is two
    assert response.json()["error"]["param"] == "messages" and "at most 2" in response.text
    body["messages"].pop()
    response = await vision_client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    record = await JobStore(redis_client, queue_settings).get(job["id"], "local")
    assert record.images == sources[:2]
    assert record.prompt is not None and "<image>What is in the picture?<image>" in record.prompt
    text_only = await vision_client.post(
        "/v1/jobs",
        json={
            "model": vlm.name,
            "messages": [{"role": "user", "content": [QUESTION]}],
            "params": {"max_tokens": 10},
        },
    )
    plain = await JobStore(redis_client, queue_settings).get(text_only.json()["id"], "local")
    assert record.prompt_tokens == plain.prompt_tokens + 2 * vlm.image_tokens
    units = cost.estimate(
        vlm, prompt_tokens=plain.prompt_tokens, max_tokens=10, image_tokens=2 * vlm.image_tokens
    ).units
    assert job["estimated_units"] == units > plain.estimated_units


@pytest.mark.parametrize(
    ("part", "param", "says"),
    [
        (image("https://images.evil.test/x.png"), ".image_url.url", "'images.evil.test' is not on"),
        (image("ftp://images.example.com/x.png"), ".image_url.url", "must be a data: URL, the id"),
        (image("cat.png"), ".image_url.url", "must be a data: URL, the id"),
        (image(data_url(PNG, "image/bmp")), ".image_url.url", "media type image/bmp is not"),
        (image(data_url(b"BM" + bytes(99))), ".image_url.url", "the image is BMP, not an allowed"),
        (image(data_url(b"%PDF-1.7 ...")), ".image_url.url", "not an image in an allowed format"),
        (image(data_url(PNG * 10)), ".image_url.url", "over 1000 bytes"),
        (image("data:image/png;base64,@@@"), ".image_url.url", "not valid base64"),
        ({"type": "image_url", "image_url": {}}, ".image_url.url", "Field required"),
        (
            {"type": "image_url", "image_url": {"url": "file-x", "detail": "mid"}},
            ".image_url.detail",
            "Input should be 'auto', 'low' or 'high'",
        ),
        ({"type": "video", "video": {}}, "", "does not match any of the expected tags"),
    ],
)
async def test_bad_image_parts_are_400s_naming_the_part(
    vision_client: httpx.AsyncClient, vlm: ModelSpec, part: dict[str, Any], param: str, says: str
) -> None:
    for path in ("/v1/chat/completions", "/v1/jobs"):
        response = await vision_client.post(path, json=chat(vlm.name, image(data_url(PNG)), part))
        # A malformed body is a 422 at /v1/jobs (FastAPI's way), a 400 at OpenAI's routes.
        malformed = param != ".image_url.url" or "Field" in says
        expected = 422 if malformed and path == "/v1/jobs" else 400
        error = response.json()["error"]
        assert response.status_code == expected, response.text
        assert error["param"] == f"messages.0.content.1{param}", error
        assert says in error["message"], error


async def test_fetching_is_off_by_default(client: httpx.AsyncClient, vlm: ModelSpec) -> None:
    body = chat(vlm.name, image("https://images.example.com/cat.jpg"))
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages.0.content.0.image_url.url"
    assert (
        error["code"] == "invalid_image" and "fetching image URLs is turned off" in error["message"]
    )


async def test_file_ids_must_be_the_tenants_image_files(
    vision_client: httpx.AsyncClient, vlm: ModelSpec
) -> None:
    batch_file = await upload(vision_client, PNG, purpose="batch")
    too_big = await upload(vision_client, PNG * 10)
    not_image = await upload(vision_client, b"just some text", purpose="user_data")
    cases = [
        ("file-nosuchfile", 404, "No such File object: file-nosuchfile"),
        (batch_file, 400, "has purpose 'batch'; an image needs 'vision' or 'user_data'"),
        (too_big, 400, "2080 bytes, over 1000"),
        (not_image, 400, "not an image in an allowed format"),
    ]
    for file_id, status, says in cases:
        response = await vision_client.post(
            "/v1/chat/completions", json=chat(vlm.name, image(file_id))
        )
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["param"] == "messages.0.content.0.image_url.url" and says in error["message"]
    ok = await vision_client.post(
        "/v1/jobs", json=chat(vlm.name, image(await upload(vision_client, PNG)))
    )
    assert ok.status_code == 202, ok.text


async def test_a_text_model_takes_no_images(client: httpx.AsyncClient, spec: ModelSpec) -> None:
    body = chat(spec.name, QUESTION, image(data_url(PNG)))
    for path in ("/v1/chat/completions", "/v1/jobs"):
        response = await client.post(path, json=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "messages.0.content.1"
        assert f"the model '{spec.name}' takes no images" in error["message"]
