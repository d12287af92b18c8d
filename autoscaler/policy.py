"""The scaling policy: one pure function from a model's signals and the policy's state to the
replicas each of its pools should run, with the reason. The live loop and the trace simulator
(``bench/autoscale.py``) call the same :func:`decide`.

Need, in units/s: the arrival rate (optionally extrapolated over a replica's start-up) at the
target utilisation, plus the backlog (queued units, and what piles up while new replicas
start) drained within ``drain_s``. Up at once; down only to the highest need of the last
``scale_down_window_s`` and past a hysteresis margin; to zero only after ``idle_to_zero_s``
without work; from zero as soon as anything is queued. Pools fill cheapest per unit first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Knobs:
    """The policy's tunables (``AutoscalerSettings`` holds them for the live loop)."""

    target_utilisation: float = 0.96  # of calibrated capacity; the drain term adds headroom
    drain_s: float = 40.0
    startup_s: float = 75.0
    scale_down_window_s: float = 20.0
    idle_to_zero_s: float = 120.0
    hysteresis: float = 0.05
    predictive: bool = False
    rate_window_s: float = 20.0  # time constant of the smoothed arrival rate (0: no smoothing)


@dataclass(frozen=True)
class Pool:
    """One pool of a model as it stands: bounds, price, capacity, and its replicas."""

    name: str
    min_replicas: int
    max_replicas: int
    capacity: float  # units/s one replica serves (its type's calibration)
    cost_per_replica_s: float = 1.0
    starting: int = 0
    ready: int = 0
    unhealthy: int = 0


@dataclass(frozen=True)
class Signals:
    """A model's queue at ``at`` (seconds): its own counters, real time."""

    at: float
    queued_units: float
    inflight_units: float
    arrived_units: float  # cumulative: the rate is its change between two decisions


@dataclass(frozen=True)
class State:
    """What the policy remembers between decisions."""

    desired: dict[str, int] = field(default_factory=dict)
    last_at: float | None = None
    last_arrived: float = 0.0
    rate: float = 0.0  # smoothed arrival rate, units/s
    trend: float = 0.0  # its change, units/s per s
    last_active_at: float = -math.inf
    needs: tuple[tuple[float, float], ...] = ()  # (at, need) within the scale-down window


@dataclass(frozen=True)
class Decision:
    """Replicas per pool, why, and the state for the next call."""

    desired: dict[str, int]
    reason: str
    need: float  # units/s
    rate: float
    state: State


def _rate(signals: Signals, state: State, knobs: Knobs) -> tuple[float, float]:
    """Smoothed arrival rate and its trend, from the cumulative counter."""
    if state.last_at is None or signals.at <= state.last_at:
        return state.rate, state.trend
    dt = signals.at - state.last_at
    sample = max(0.0, signals.arrived_units - state.last_arrived) / dt
    a = 1 - math.exp(-dt / knobs.rate_window_s) if knobs.rate_window_s > 0 else 1.0
    rate = a * sample + (1 - a) * state.rate
    trend = a * (rate - state.rate) / dt + (1 - a) * state.trend
    return rate, trend


def _allocate(need: float, pools: Sequence[Pool], zero: bool) -> dict[str, int]:
    """Replicas per pool for ``need`` units/s: each pool's minimum first, then the cheapest
    per unit of capacity up to its maximum; at least one replica while anything is needed."""
    desired = {p.name: p.min_replicas for p in pools}
    left = need - sum(p.min_replicas * p.capacity for p in pools)
    for pool in sorted(pools, key=lambda p: p.cost_per_replica_s / p.capacity):
        if left <= 1e-9:
            break
        extra = min(pool.max_replicas - pool.min_replicas, math.ceil(left / pool.capacity - 1e-9))
        desired[pool.name] += extra
        left -= extra * pool.capacity
    if not zero and not any(desired.values()):
        cheapest = min(
            (p for p in pools if p.max_replicas > 0),
            key=lambda p: p.cost_per_replica_s / p.capacity,
            default=None,
        )
        if cheapest is not None:
            desired[cheapest.name] = 1
    return desired


def decide(signals: Signals, pools: Sequence[Pool], state: State, knobs: Knobs) -> Decision:
    """Replicas per pool of one model (see the module's description)."""
    rate, trend = _rate(signals, state, knobs)
    arrived = state.last_at is not None and signals.arrived_units > state.last_arrived
    busy = signals.queued_units > 0 or signals.inflight_units > 0 or arrived
    last_active = signals.at if busy else state.last_active_at
    coming = sum((p.ready + p.starting) * p.capacity for p in pools)
    expected = rate + max(0.0, trend) * knobs.startup_s if knobs.predictive else rate
    # A replica asked for now serves after start-up: what those ready or starting cannot
    # serve meanwhile piles up (counted once: the queue holds what has piled up so far).
    piling = max(0.0, rate - coming) * knobs.startup_s if signals.queued_units else 0.0
    backlog = signals.queued_units + piling
    now_need = expected / knobs.target_utilisation + backlog / knobs.drain_s
    window = knobs.scale_down_window_s
    needs = (*((t, n) for t, n in state.needs if signals.at - t < window), (signals.at, now_need))
    held = max(n for _, n in needs)  # slow down: the highest need of the window
    idle = signals.at - last_active >= knobs.idle_to_zero_s
    wanted = _allocate(0.0 if idle else now_need, pools, zero=idle)
    holding = _allocate(0.0 if idle else held * (1 + knobs.hysteresis), pools, zero=idle)
    current = {p.name: state.desired.get(p.name, p.starting + p.ready) for p in pools}
    desired = {}
    for pool in pools:
        was, up, keep = current[pool.name], wanted[pool.name], holding[pool.name]
        # Up at once; down only as far as the window's highest need (with margin) allows.
        new = up if up >= was else max(up, min(was, keep))
        desired[pool.name] = max(pool.min_replicas, min(pool.max_replicas, new))
    reason = _reason(current, desired, rate, backlog, now_need, held, idle, knobs)
    new_state = replace(
        state,
        desired=desired,
        last_at=signals.at,
        last_arrived=signals.arrived_units,
        rate=rate,
        trend=trend,
        last_active_at=last_active,
        needs=needs,
    )
    return Decision(desired, reason, now_need, rate, new_state)


def _reason(
    current: dict[str, int],
    desired: dict[str, int],
    rate: float,
    backlog: float,
    need: float,
    held: float,
    idle: bool,
    knobs: Knobs,
) -> str:
    before, after = sum(current.values()), sum(desired.values())
    figures = (
        f"arrivals {rate:.3g} u/s, backlog {backlog:.3g} u (drain in {knobs.drain_s:g} s), "
        f"need {need:.3g} u/s at {knobs.target_utilisation:.0%}"
    )
    if after > before:
        return f"up {before}->{after}: {figures}"
    if after < before:
        why = f"idle {knobs.idle_to_zero_s:g} s" if idle else figures
        return f"down {before}->{after}: {why}"
    if idle:
        return f"hold {after}: idle"
    if held > need:
        return f"hold {after}: {figures}; window peak {held:.3g} u/s"
    return f"hold {after}: {figures}"
