"""A model's reservable capacity: calibrated units/s of each pool's type x its max replicas."""

from __future__ import annotations

import json

import pytest

from queueing import keys
from queueing.capacity import reservable_units
from queueing.connection import Client
from queueing.settings import PoolSettings, Settings
from queueing.tenants import ReservationRefused


async def calibrate(client: Client, model: str, replica: str, units_per_s: float) -> None:
    """Store a calibration as ``inferq calibrate`` does (only the fields read here)."""
    record = {"model": model, "replica": replica, "units_per_s": units_per_s, "unit_budget": 4}
    await client.hset(keys.capacity(model), replica, json.dumps(record))


async def test_pools_of_the_model_add_their_calibrated_maximum(redis_client: Client) -> None:
    settings = Settings(
        pools={
            "cpu": PoolSettings(model="m", max_replicas=3, replica_type="cpu"),
            "gpu": PoolSettings(model="m", min_replicas=0, max_replicas=2, replica_type="gpu"),
            "new": PoolSettings(model="m", min_replicas=0, max_replicas=5, replica_type="tpu"),
            "other": PoolSettings(model="n", max_replicas=4, replica_type="cpu"),
        }
    )
    with pytest.raises(ReservationRefused, match=r"no calibration .* \(cpu, gpu, tpu\)"):
        await reservable_units(redis_client, settings, "m")
    await calibrate(redis_client, "m", "cpu", 2.5)
    assert await reservable_units(redis_client, settings, "m") == 7.5
    await calibrate(redis_client, "m", "gpu", 40.0)
    await calibrate(redis_client, "n", "cpu", 1000.0)  # another model's pools count not
    assert await reservable_units(redis_client, settings, "m") == 87.5  # tpu: uncalibrated, 0
    with pytest.raises(ReservationRefused, match="no pool serves z"):
        await reservable_units(redis_client, settings, "z")
