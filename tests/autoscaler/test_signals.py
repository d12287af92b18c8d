"""The autoscaler's snapshot: queue counters, pools from heartbeats, capacity by replica type."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from autoscaler.signals import pool_view, read_snapshot
from queueing import keys
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.settings import PoolSettings, QueueSettings, Settings
from tests.queueing.records import record
from workers.calibration import Calibration, save
from workers.heartbeat import Load, Progress, heartbeat


async def test_a_snapshot_counts_units_replicas_and_capacity(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    settings = Settings(
        queue=queue_settings,
        pools={
            "small": PoolSettings(model="m", replica_type="cpu-2core", min_replicas=0),
            "big": PoolSettings(model="m", replica_type="gpu", max_replicas=4),
        },
    )
    store = JobStore(redis_client, queue_settings)
    for units in (0.5, 0.25):
        await store.enqueue(record("m", JobClass.STANDARD, band=0, units=units))
    for name, pool, health in [("a", "small", {}), ("b", "small", {"health": "stalled"})]:
        beat = heartbeat(
            redis_client,
            name,
            "m",
            Progress(),
            lambda: Load(0.3, 2),
            None,
            lambda h=health: h,
            {"pool": pool, "replica": "cpu-2core"},
        )
        await beat.beat()
    stale = {"model": "m", "pool": "small", "health": "ok", "in_flight_units": 9}
    await redis_client.hset(keys.WORKERS, "gone", json.dumps(stale))  # no alive key
    await save(redis_client, Calibration("m", "cpu-2core", 0.8, 0.4, 0.0))

    snap = await read_snapshot(redis_client, settings)

    signals = snap.signals("m")
    assert signals.queued_units == 0.75 and signals.arrived_units == 0.75
    small, big = snap.pools["small"], snap.pools["big"]
    assert (small.ready, small.unhealthy, small.inflight_units) == (1, 2, 0.3)
    assert small.capacity == 0.8 and small.calibrated
    assert (big.ready, big.unhealthy) == (0, 0)
    assert big.capacity == settings.autoscaler.default_capacity and not big.calibrated
    view = pool_view(big, settings, running=3)
    assert (view.starting, view.max_replicas, view.min_replicas) == (3, 4, 1)
    assert pool_view(small, settings, running=3).starting == 0
