"""Build a tiny Idefics3 vision-language model locally: SmolLM2's weights as its language
model, a small randomly initialised vision tower, and Idefics3's real processor config.

No VLM weights can be fetched here; this one exercises the real multimodal path of vLLM
(processor, image tokens, vision encoder, connector) end to end. Its image features are
random, so its answers about an image are not meaningful. Real checkpoints load by path.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from workers.model_prepare import SAVED_DTYPE, prepare_smollm2

TINY_VLM_DIR = "tiny-vlm-idefics3"  # under the models folder
IMAGE_SIZE = 512
PATCH_SIZE = 32
SCALE_FACTOR = 2
# Image tokens per image: (512 / 32)² patches, merged 2 x 2 by the connector's pixel shuffle.
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2
VISION = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}
SEED = 1234
MARKER = "inferq_tiny_vlm"
# SmolLM2's ChatML, with content that is a string or a list of text and image parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def is_prepared(target: Path) -> bool:
    """True when ``target`` holds a tiny VLM built by this module."""
    try:
        config = json.loads((target / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get(MARKER)) and (target / "model.safetensors").is_file()


def prepare_tiny_vlm(target: Path, language_model: Path) -> Path:
    """Build the tiny VLM into ``target`` once (``language_model``: SmolLM2's folder, prepared
    first if it is not yet); later calls return at once."""
    if is_prepared(target):
        return target
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    prepare_smollm2(language_model)
    tokenizer = AutoTokenizer.from_pretrained(language_model)
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False,
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
    )
    processor = Idefics3Processor(  # adds Idefics3's image tokens to the tokenizer
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IMAGE_TOKENS,
        chat_template=CHAT_TEMPLATE,
    )
    lm = AutoModelForCausalLM.from_pretrained(language_model, dtype=torch.float32)
    text_config = lm.config.to_dict()
    text_config["vocab_size"] = len(tokenizer)
    config = Idefics3Config(
        vision_config={**VISION, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE},
        text_config=text_config,
        scale_factor=SCALE_FACTOR,
        image_token_id=processor.image_token_id,
        tie_word_embeddings=lm.config.tie_word_embeddings,
        pad_token_id=lm.config.pad_token_id,
    )
    torch.manual_seed(SEED)
    model = Idefics3ForConditionalGeneration(config)
    _copy_language_model(model, lm)
    model.to(getattr(torch, SAVED_DTYPE))
    _publish(model, processor, target)
    return target


def _copy_language_model(model: Any, lm: Any) -> None:
    """SmolLM2's weights into the VLM's text model; the added tokens' rows get the mean row."""
    import torch

    source = lm.model.state_dict()
    embed = source.pop("embed_tokens.weight")
    text_model = model.model.text_model
    missing, unexpected = text_model.load_state_dict(source, strict=False)
    if unexpected or set(missing) != {"embed_tokens.weight"}:
        raise RuntimeError(f"SmolLM2 does not fit the VLM: {missing=} {unexpected=}")
    with torch.no_grad():
        rows = text_model.embed_tokens.weight
        rows[: embed.shape[0]] = embed
        rows[embed.shape[0] :] = embed.mean(dim=0)
        if not model.config.tie_word_embeddings:
            head = lm.lm_head.weight
            model.lm_head.weight[: head.shape[0]] = head
            model.lm_head.weight[head.shape[0] :] = head.mean(dim=0)


def _publish(model: Any, processor: Any, target: Path) -> None:
    """Save into a fresh folder beside ``target``, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.config.update({MARKER: True})
        model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
        model.save_pretrained(build, safe_serialization=True)
        processor.save_pretrained(build)
        if target.exists():
            shutil.rmtree(target)
        build.rename(target)
    finally:
        shutil.rmtree(build, ignore_errors=True)
