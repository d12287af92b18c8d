"""What a model's pools can serve at most, for reservations (provisioned throughput).

A model's capacity is the sum over the pools that serve it of ``max_replicas`` times the
calibrated units/s of the pool's replica type (``inferq calibrate`` stores them under
``keys.capacity(model)``; the autoscaler sizes pools by the same figures). A pool whose type
has no calibration adds nothing: the autoscaler's ``default_capacity`` is a guess, and a
reservation must rest on a measurement.
"""

from __future__ import annotations

from queueing.connection import Client
from queueing.settings import Settings
from queueing.signals import read_capacities
from queueing.tenants import ReservationRefused


async def reservable_units(client: Client, settings: Settings, model: str) -> float:
    """The most units/s ``model``'s pools can serve; refuses when nothing calibrated backs it."""
    pools = {
        name: pool for name, pool in settings.pools.items() if settings.pool_model(name) == model
    }
    if not pools:
        raise ReservationRefused(
            f"no pool serves {model}: reservations need a pool (INFERQ_POOLS)",
            param="share.reserved",
        )
    calibrated = await read_capacities(client, model)
    total = sum(
        pool.max_replicas * calibrated[pool.replica_type]
        for pool in pools.values()
        if pool.replica_type in calibrated
    )
    if not any(pool.replica_type in calibrated for pool in pools.values()):
        types = ", ".join(sorted({p.replica_type for p in pools.values()}))
        raise ReservationRefused(
            f"{model} has no calibration for its replica type ({types}): run `inferq "
            "calibrate` on one first; a reservation must rest on a measured capacity",
            param="share.reserved",
        )
    return float(total)
