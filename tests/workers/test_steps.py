"""The step clock: step times without idle gaps, and the prefill rate from large prefills."""

from __future__ import annotations

import time

from workers.steps import LARGE_PREFILL, StepClock


def test_step_times_leave_out_idle_gaps_and_follow_the_recent_window() -> None:
    clock = StepClock(window=3)
    clock.work_arrived()
    time.sleep(0.05)
    clock.step(busy_after=True)
    time.sleep(0.02)
    clock.step(busy_after=False)  # idle from here
    time.sleep(0.2)
    clock.step(busy_after=True)  # no work arrived: an idle gap, not a step time
    assert clock.count == 3 and 0.05 <= clock.pace_s() < 0.15
    for _ in range(3):
        clock.step(busy_after=True)
    assert clock.pace_s() < 0.01, "the 50 ms step left the window of three"
    assert clock.last_at <= time.monotonic()


def test_prefill_rate_is_learned_only_from_large_prefills() -> None:
    clock = StepClock()
    clock.work_arrived()
    time.sleep(0.01)
    clock.step(busy_after=True, prefilled=10, prefill_next=2 * LARGE_PREFILL)
    assert clock.prefill_s_per_token() is None, "ten tokens say nothing of the rate"
    time.sleep(0.05)
    clock.step(busy_after=True)  # prefilled what the step before announced
    per_token = clock.prefill_s_per_token()
    assert per_token is not None
    assert 0.05 / (2 * LARGE_PREFILL) <= per_token < 0.15 / (2 * LARGE_PREFILL)
