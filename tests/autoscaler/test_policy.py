"""The pure policy: up at once, down slowly with hysteresis, zero after idle, cheapest first."""

from __future__ import annotations

from dataclasses import replace

from autoscaler.policy import Decision, Knobs, Pool, Signals, State, decide

KNOBS = Knobs(
    target_utilisation=1.0,
    drain_s=10.0,
    startup_s=30.0,
    scale_down_window_s=60.0,
    idle_to_zero_s=120.0,
    rate_window_s=0.0,
)
POOL = Pool("p", min_replicas=0, max_replicas=10, capacity=1.0)


def run(
    steps: list[tuple[float, float, float]],
    pools: list[Pool] | None = None,
    knobs: Knobs = KNOBS,
    state: State | None = None,
) -> list[Decision]:
    """Decisions for (at, queued units, arrival rate) steps, 10 s apart, replicas all ready."""
    state = state or State()
    arrived = 0.0
    decisions = []
    last = steps[0][0]
    for at, queued, rate in steps:
        arrived += rate * (at - last)
        last = at
        now = [replace(p, ready=state.desired.get(p.name, 0)) for p in (pools or [POOL])]
        decision = decide(Signals(at, queued, 0.0, arrived), now, state, knobs)
        decisions.append(decision)
        state = decision.state
    return decisions


def test_demand_against_capacity() -> None:
    d = run([(0, 0, 0), (10, 0, 3.5), (20, 0, 3.5)])
    assert d[-1].desired == {"p": 4}
    assert d[-1].reason.startswith("hold 4")


def test_a_backlog_is_drained_within_the_target_time() -> None:
    # 3 u/s arriving and 50 u queued: 3 + 50 / 10 = 8 replicas.
    d = run([(0, 0, 0), (10, 0, 3.0), (20, 50, 3.0)])
    assert d[-1].desired == {"p": 8}
    assert d[-1].reason.startswith("up 3->8")


def test_start_up_is_counted_while_replicas_cannot_serve_yet() -> None:
    # 2 u/s arrive, nothing ready: 60 u pile up during the 30 s start, 2 + (5 + 60) / 10.
    pools = [replace(POOL, starting=0)]
    decision = decide(Signals(10, 5, 0, 20), pools, State(last_at=0.0), KNOBS)
    assert decision.desired == {"p": 9}


def test_up_at_once_down_slowly_after_the_window() -> None:
    steps = [(0, 0, 0), (10, 0, 6), *((10.0 * i, 0, 0.8) for i in range(2, 12))]
    d = run(steps)
    assert d[1].desired == {"p": 6}
    # Held for the 60 s window (with margin), then down to 1.
    held = [x.desired["p"] for x in d[2:]]
    assert held[:5] == [6] * 5
    assert held[-1] == 1


def test_hysteresis_keeps_a_replica_near_the_boundary() -> None:
    # 4.0 then 3.8 u/s: 3.8 * 1.1 > 4, so the fourth replica stays.
    steps = [(0, 0, 0), (10, 0, 4.0), *((10.0 * i, 0, 3.8) for i in range(2, 12))]
    assert run(steps)[-1].desired == {"p": 4}


def test_scale_to_zero_after_idle_and_from_zero_on_the_first_arrival() -> None:
    steps = [(0, 0, 0), (10, 0, 1.0), *((10.0 * i, 0, 0) for i in range(2, 16))]
    d = run(steps)
    assert d[1].desired == {"p": 1}
    zero_at = next(x.state.last_at for x in d[1:] if x.desired == {"p": 0})
    assert zero_at is not None and zero_at >= 10 + KNOBS.idle_to_zero_s
    assert "idle" in next(x.reason for x in d[1:] if x.desired == {"p": 0})
    # One queued job (no rate yet) wakes the pool at once.
    woken = decide(Signals(200, 0.01, 0, 10), [POOL], d[-1].state, KNOBS)
    assert woken.desired == {"p": 1} and woken.reason.startswith("up 0->1")


def test_min_and_max_bound_the_pool() -> None:
    bounded = replace(POOL, min_replicas=2, max_replicas=5)
    assert run([(0, 0, 0), (10, 0, 0.1)], [bounded])[-1].desired == {"p": 2}
    assert run([(0, 0, 0), (10, 500, 50)], [bounded])[-1].desired == {"p": 5}


def test_the_cheapest_capacity_fills_first() -> None:
    gpu = Pool("gpu", 0, 2, capacity=10.0, cost_per_replica_s=4.0)  # 0.4 per u/s
    cpu = Pool("cpu", 0, 8, capacity=1.0, cost_per_replica_s=1.0)  # 1.0 per u/s
    d = run([(0, 0, 0), (10, 0, 25.0)], [gpu, cpu])
    assert d[-1].desired == {"gpu": 2, "cpu": 5}


def test_the_predictive_term_looks_over_the_start_up() -> None:
    ramp = [(0, 0, 0), (10, 0, 1.0), (20, 0, 2.0)]
    plain = run(ramp)[-1].desired["p"]
    ahead = run(ramp, knobs=replace(KNOBS, predictive=True))[-1].desired["p"]
    assert plain == 2 and ahead > plain
