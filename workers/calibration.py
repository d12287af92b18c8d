"""Calibration: measure a replica's capacity in model units per second, store it, read it."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import redis.asyncio as aioredis

from queueing import cost, keys
from queueing.catalogue import ModelSpec
from queueing.schemas import SamplingParams
from queueing.settings import WorkerSettings
from workers.engine import Engine, EngineRequest

log = logging.getLogger(__name__)

DEFAULT_LEVELS = (1, 2, 4, 8, 16, 32, 64)
# A prompt of a few dozen tokens: the shape of a short chat turn.
CALIBRATION_PROMPT = (
    "You are a helpful assistant. Write a short story about a lighthouse keeper who finds a "
    "message in a bottle, with a beginning, a middle and an end."
)


@dataclass(frozen=True)
class Level:
    """Throughput at one concurrency."""

    concurrency: int
    inflight_units: float
    units_per_s: float
    tokens_per_s: float


@dataclass(frozen=True)
class Calibration:
    """A replica's measured capacity, and the in-flight budget that reaches it."""

    model: str
    replica: str
    units_per_s: float
    unit_budget: float
    measured_at: float
    levels: list[Level] = field(default_factory=list)

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Calibration:
        """Read the stored form back."""
        data = json.loads(raw)
        data["levels"] = [Level(**level) for level in data.get("levels", [])]
        return cls(**data)


async def _one(engine: Engine, params: SamplingParams) -> tuple[int, int]:
    """Run one request; returns its prompt and output token counts."""
    request = EngineRequest(f"calibrate-{secrets.token_hex(6)}", CALIBRATION_PROMPT, params)
    prompt_tokens = completion_tokens = 0
    async for delta in engine.generate(request):
        prompt_tokens = delta.prompt_tokens or prompt_tokens
        completion_tokens = delta.completion_tokens or completion_tokens
    return prompt_tokens, completion_tokens


async def measure_level(
    engine: Engine, spec: ModelSpec, concurrency: int, *, requests: int, max_tokens: int
) -> Level:
    """Keep ``concurrency`` requests in flight until ``requests`` have run."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.8)
    gate = asyncio.Semaphore(concurrency)

    async def gated() -> tuple[int, int]:
        async with gate:
            return await _one(engine, params)

    started = time.monotonic()
    counts = await asyncio.gather(*(gated() for _ in range(requests)))
    elapsed = time.monotonic() - started
    prompt = sum(p for p, _ in counts)
    output = sum(c for _, c in counts)
    done_units = (prompt * spec.prompt_weight + output * spec.output_weight) / 1000
    # The budget counts estimated units, as the queue prices a job before it runs.
    estimate = cost.estimate(spec, prompt_tokens=prompt // requests, max_tokens=max_tokens)
    return Level(
        concurrency=concurrency,
        inflight_units=round(concurrency * estimate.units, 4),
        units_per_s=round(done_units / elapsed, 4),
        tokens_per_s=round(output / elapsed, 2),
    )


async def calibrate(
    engine: Engine,
    spec: ModelSpec,
    replica: str,
    *,
    levels: Sequence[int] = DEFAULT_LEVELS,
    max_tokens: int = 32,
    rounds: int = 2,
    knee: float = 0.95,
) -> Calibration:
    """Measure throughput at each concurrency in ``levels`` (``rounds`` waves each).

    Capacity is the best units/s seen; the budget is the in-flight units of the lowest
    concurrency that reached ``knee`` of it: more would only add queueing inside the engine.
    """
    await measure_level(engine, spec, 1, requests=1, max_tokens=4)  # warm-up
    measured = []
    for concurrency in levels:
        level = await measure_level(
            engine, spec, concurrency, requests=concurrency * rounds, max_tokens=max_tokens
        )
        log.info("calibration: %s", level)
        measured.append(level)
    best = max(level.units_per_s for level in measured)
    enough = next(level for level in measured if level.units_per_s >= knee * best)
    return Calibration(
        model=spec.name,
        replica=replica,
        units_per_s=best,
        unit_budget=enough.inflight_units,
        measured_at=time.time(),
        levels=measured,
    )


async def save(client: aioredis.Redis, calibration: Calibration) -> None:
    """Store the calibration under the model, for this replica."""
    await client.hset(keys.capacity(calibration.model), calibration.replica, calibration.to_json())


async def load(client: aioredis.Redis, model: str, replica: str) -> Calibration | None:
    """The stored calibration of ``model`` on ``replica``, if there is one."""
    raw = await client.hget(keys.capacity(model), replica)
    return Calibration.from_json(raw) if raw is not None else None


async def budget_for(client: aioredis.Redis, model: str, settings: WorkerSettings) -> float | None:
    """The worker's in-flight budget: the settings' own, else this replica's calibration."""
    if settings.unit_budget is not None:
        return settings.unit_budget
    stored = await load(client, model, settings.replica)
    return stored.unit_budget if stored is not None else None
