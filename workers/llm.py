"""The LLM worker process: one vLLM engine fed by the generic worker loop."""

from __future__ import annotations

import asyncio

from queueing.catalogue import Catalogue
from queueing.settings import Settings
from workers.engines.vllm import VllmConfig, VllmEngine
from workers.loop import run_worker


def serve(settings: Settings, redis_url: str, model: str) -> None:
    """Start the engine for ``model`` and work its queues until SIGTERM/SIGINT.

    Call only under ``if __name__ == "__main__":`` (vLLM spawns processes).
    """
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(model)
    engine = VllmEngine(VllmConfig(model=spec.path, max_model_len=spec.context_length))
    try:
        asyncio.run(run_worker(redis_url, spec, engine, settings))
    finally:
        engine.shutdown()
