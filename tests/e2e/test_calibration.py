"""Calibration on the real engine: capacity in units/s, stored, and the budget workers take."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.settings import WorkerSettings
from workers.calibration import budget_for, calibrate, load, save
from workers.engines.vllm import VllmEngine

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_calibration_measures_stores_and_sets_the_budget(
    redis_client: aioredis.Redis, vllm_engine: VllmEngine, spec: ModelSpec
) -> None:
    result = await calibrate(vllm_engine, spec, "replica-a", levels=(1, 8), max_tokens=16, rounds=1)
    one, eight = result.levels
    assert one.concurrency == 1 and eight.concurrency == 8
    assert eight.inflight_units == pytest.approx(8 * one.inflight_units)
    assert eight.tokens_per_s > 2 * one.tokens_per_s, "the engine batches concurrent requests"
    assert result.units_per_s == max(one.units_per_s, eight.units_per_s) > 0
    assert result.unit_budget in (one.inflight_units, eight.inflight_units)

    await save(redis_client, result)
    assert await load(redis_client, spec.name, "replica-a") == result
    assert await load(redis_client, spec.name, "replica-b") is None
    here = WorkerSettings(replica="replica-a")
    assert await budget_for(redis_client, spec.name, here) == result.unit_budget
    assert await budget_for(redis_client, spec.name, WorkerSettings(replica="replica-b")) is None
    pinned = WorkerSettings(replica="replica-a", unit_budget=3.0)
    assert await budget_for(redis_client, spec.name, pinned) == 3.0
