"""The LLM worker process: one vLLM engine fed by the generic worker loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from queueing.catalogue import Catalogue, ModelSpec
from queueing.connection import connect
from queueing.settings import Settings
from workers.calibration import Calibration, calibrate, save
from workers.engines.vllm import VllmConfig, VllmEngine
from workers.loop import run_worker

# Exit status of a worker that stepped aside because its engine was unhealthy.
UNHEALTHY_EXIT = 3


def _engine(spec: ModelSpec, settings: Settings) -> VllmEngine:
    """The engine of this worker's pool, as its engine settings say."""
    return VllmEngine(VllmConfig.of(spec, settings.pool(settings.worker.pool).engine))


def serve(settings: Settings, redis_url: str, model: str) -> int:
    """Start the engine for ``model`` and work its queues until SIGTERM/SIGINT.

    Returns the exit status: 0, or :data:`UNHEALTHY_EXIT` when the watchdog stopped it.
    Call only under ``if __name__ == "__main__":`` (vLLM spawns processes).
    """
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(model)
    engine = _engine(spec, settings)
    try:
        failure = asyncio.run(run_worker(redis_url, spec, engine, settings))
    finally:
        engine.shutdown()
    return UNHEALTHY_EXIT if failure else 0


def calibrate_replica(
    settings: Settings, redis_url: str, model: str, levels: Sequence[int], max_tokens: int
) -> Calibration:
    """Start the engine for ``model``, measure this replica and store the result."""
    spec = Catalogue.load(settings.models_dir, settings.catalogue).get(model)
    engine = _engine(spec, settings)

    async def measure_and_save() -> Calibration:
        result = await calibrate(
            engine, spec, settings.worker.replica, levels=levels, max_tokens=max_tokens
        )
        client = await connect(redis_url)
        try:
            await save(client, result)
        finally:
            await client.aclose()
        return result

    try:
        return asyncio.run(measure_and_save())
    finally:
        engine.shutdown()
