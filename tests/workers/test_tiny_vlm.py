"""The tiny VLM: SmolLM2's weights in an Idefics3 model whose real processor turns a prepared
image into 64 image tokens, saved in a folder that transformers (and so vLLM) loads."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from preprocess.prepare import prepare
from queueing.catalogue import ModelSpec
from queueing.settings import PreprocessSettings
from tests.preprocess.images import encode, scene
from workers.tiny_vlm import IMAGE_TOKENS, is_prepared, prepare_tiny_vlm

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def vlm(tmp_path_factory: pytest.TempPathFactory, spec: ModelSpec) -> Path:
    return prepare_tiny_vlm(tmp_path_factory.mktemp("models") / "tiny-vlm", spec.path)


def test_the_folder_is_built_once(vlm: Path, spec: ModelSpec) -> None:
    assert is_prepared(vlm)
    stamp = (vlm / "model.safetensors").stat().st_mtime_ns
    assert prepare_tiny_vlm(vlm, spec.path) == vlm
    assert (vlm / "model.safetensors").stat().st_mtime_ns == stamp


def test_the_language_model_is_smollm2(vlm: Path, spec: ModelSpec) -> None:
    smol = load_file(spec.path / "model.safetensors")
    tiny = load_file(vlm / "model.safetensors")
    layer = "model.layers.3.mlp.down_proj.weight"
    assert torch.equal(tiny["model.text_model.layers.3.mlp.down_proj.weight"], smol[layer])
    embed = smol["model.embed_tokens.weight"]
    assert torch.equal(tiny["model.text_model.embed_tokens.weight"][: embed.shape[0]], embed)


def test_a_prepared_image_becomes_64_tokens_and_the_model_runs(vlm: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(vlm)
    assert type(processor.image_processor).__name__ == "Idefics3ImageProcessorPil"
    prepared = prepare(encode(scene(1600, 1200), "JPEG"), PreprocessSettings(max_edge=512))
    image = Image.open(io.BytesIO(prepared.data))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=text, images=[image], return_tensors="pt")
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == IMAGE_TOKENS == 64
    model = AutoModelForImageTextToText.from_pretrained(vlm, dtype=torch.float32)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()
