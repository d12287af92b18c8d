"""What the autoscaler sees: each model's queue (its own counters, real time), each pool's
workers from their heartbeats, and each replica type's calibrated capacity."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from autoscaler.policy import Pool, Signals
from queueing.connection import Client
from queueing.figures import ModelFigures, read_figures
from queueing.settings import Settings
from queueing.signals import read_capacities, read_processes


@dataclass(frozen=True)
class PoolReading:
    """A pool's workers as their heartbeats say: ready (alive, healthy), unhealthy (stalled
    or stale), their in-flight units and token rate; and the capacity of the pool's type."""

    name: str
    model: str
    ready: int
    unhealthy: int
    inflight_units: float
    tokens_per_s: float
    capacity: float  # units/s per replica: the calibration, else the settings' default
    calibrated: bool


@dataclass(frozen=True)
class Snapshot:
    """Every model's queue figures and every pool's reading at ``at`` (Unix seconds)."""

    at: float
    models: dict[str, ModelFigures]
    pools: dict[str, PoolReading]

    def signals(self, model: str) -> Signals:
        """The policy's input for ``model``."""
        figures = self.models.get(model) or ModelFigures(model)
        return Signals(
            at=self.at,
            queued_units=figures.queued_units,
            inflight_units=figures.inflight_units,
            arrived_units=figures.arrived_units,
        )


def _pool_reading(
    name: str, model: str, workers: list[dict[str, Any]], capacity: float | None, default: float
) -> PoolReading:
    ready = [w for w in workers if w["health"] == "ok"]
    return PoolReading(
        name=name,
        model=model,
        ready=len(ready),
        unhealthy=len(workers) - len(ready),
        inflight_units=round(sum(float(w.get("in_flight_units") or 0) for w in ready), 4),
        tokens_per_s=round(sum(float(w.get("tokens_per_s") or 0) for w in ready), 2),
        capacity=capacity or default,
        calibrated=capacity is not None,
    )


async def read_snapshot(client: Client, settings: Settings) -> Snapshot:
    """One reading of everything the policy needs, for every pool in ``settings``."""
    models = sorted({settings.pool_model(name) for name in settings.pools})
    figures = await read_figures(client, settings.queue, models)
    processes = await read_processes(client)
    capacities = {model: await read_capacities(client, model) for model in models}
    pools = {}
    for name, pool in settings.pools.items():
        model = settings.pool_model(name)
        workers = [
            p
            for p in processes
            if p["kind"] == "worker" and p.get("pool", "default") == name and p["model"] == model
        ]
        capacity = capacities[model].get(pool.replica_type)
        pools[name] = _pool_reading(
            name, model, workers, capacity, settings.autoscaler.default_capacity
        )
    return Snapshot(at=time.time(), models=figures, pools=pools)


def pool_view(reading: PoolReading, settings: Settings, running: int) -> Pool:
    """The policy's view of a pool: ``running`` is what the actuator runs (started or
    starting); those without a heartbeat yet are starting."""
    pool = settings.pool(reading.name)
    return Pool(
        name=reading.name,
        min_replicas=pool.min_replicas,
        max_replicas=pool.max_replicas,
        capacity=reading.capacity,
        cost_per_replica_s=pool.cost_per_replica_s,
        starting=max(0, running - reading.ready - reading.unhealthy),
        ready=reading.ready,
        unhealthy=reading.unhealthy,
    )
