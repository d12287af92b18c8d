"""The loop: a decision per pool from the real queue, recorded with its reason and metrics."""

from __future__ import annotations

import redis.asyncio as aioredis

from autoscaler.actuator import DryRunActuator
from autoscaler.loop import Autoscaler
from autoscaler.metrics import AutoscalerMetrics
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.pools import read_decisions
from queueing.settings import AutoscalerSettings, PoolSettings, QueueSettings, Settings
from tests.queueing.records import record


async def test_a_pool_wakes_from_zero_on_the_first_job_and_says_why(
    redis_client: aioredis.Redis, queue_settings: QueueSettings
) -> None:
    settings = Settings(
        queue=queue_settings,
        pools={"small": PoolSettings(model="m", min_replicas=0, max_replicas=2)},
        autoscaler=AutoscalerSettings(default_capacity=0.5),
    )
    actuator, metrics = DryRunActuator(), AutoscalerMetrics()
    scaler = Autoscaler(redis_client, settings, actuator, "test", metrics)

    [idle] = await scaler.step()
    assert idle.desired == 0 and actuator.replicas == {"small": 0}

    await JobStore(redis_client, queue_settings).enqueue(record("m", JobClass.STANDARD, units=0.2))
    [woken] = await scaler.step()
    assert woken.desired == 1 and woken.reason.startswith("up 0->1")
    assert actuator.replicas == {"small": 1}
    stored = (await read_decisions(redis_client))["small"]
    assert stored.desired == 1 and stored.reason == woken.reason and stored.model == "m"
    sample = metrics.registry.get_sample_value
    assert sample("inferq_pool_desired_replicas", {"pool": "small", "model": "m"}) == 1
    assert sample("inferq_autoscaler_decisions_total", {"pool": "small", "direction": "up"}) == 1

    # A backlog far beyond two replicas' capacity: the pool's maximum bounds it.
    store = JobStore(redis_client, queue_settings)
    for _ in range(20):
        await store.enqueue(record("m", JobClass.STANDARD, units=2.0))
    [busy] = await scaler.step()
    assert busy.desired == 2
