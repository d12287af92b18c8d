"""A pool's engine settings reach vLLM's config (they could not be set at all before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from queueing.catalogue import ModelSpec
from queueing.settings import EngineSettings, Settings
from workers.engines.vllm import VllmConfig

SPEC = ModelSpec(
    name="m", path=Path("/models/m"), context_length=8192, prompt_weight=1, output_weight=1
)


def test_the_cpu_defaults_stay() -> None:
    config = VllmConfig.of(SPEC, EngineSettings())
    assert config == VllmConfig(model=Path("/models/m"), max_model_len=8192)
    assert (config.dtype, config.enforce_eager, config.max_num_seqs) == ("float32", True, 64)


def test_a_gpu_pool_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "INFERQ_POOLS",
        '{"gpu": {"engine": {"dtype": "bfloat16", "enforce_eager": false, "max_num_seqs": 256,'
        ' "kv_cache_bytes": 8589934592, "max_model_len": 4096}, "max_replicas": 4}}',
    )
    settings = Settings()
    config = VllmConfig.of(SPEC, settings.pool("gpu").engine)
    assert (config.dtype, config.enforce_eager, config.max_num_seqs) == ("bfloat16", False, 256)
    assert (config.kv_cache_bytes, config.max_model_len) == (8 << 30, 4096)
    assert settings.pool("gpu").max_replicas == 4 and settings.pool("other").max_replicas == 1
