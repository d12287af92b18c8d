"""The same vLLM adapter on a GPU: runs where CUDA and the ``vllm`` package are present."""

from __future__ import annotations

import importlib.util

import pytest

from queueing.catalogue import ModelSpec
from queueing.schemas import SamplingParams
from workers.engine import EngineRequest
from workers.engines.vllm import VllmConfig, VllmEngine


def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not _cuda(), reason="needs CUDA and the vllm package (the gpu extra)"),
]

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


async def test_gpu_engine_answers_paris(spec: ModelSpec) -> None:
    engine = VllmEngine(VllmConfig(model=spec.path, max_model_len=2048, dtype="float16"))
    try:
        request = EngineRequest("gpu-1", PROMPT, SamplingParams(max_tokens=20), priority=0)
        deltas = [delta async for delta in engine.generate(request)]
    finally:
        engine.shutdown()
    assert "Paris" in "".join(d.text for d in deltas)
    assert deltas[-1].finish_reason is not None and deltas[-1].completion_tokens > 0
