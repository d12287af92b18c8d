"""The engine's pace: how many steps it has made, when the last one was, how long they take."""

from __future__ import annotations

import time
from collections import deque


class StepClock:
    """Counts engine steps that produced output for any running request.

    An engine adapter calls :meth:`step` once per step (from its output path; no I/O),
    saying whether requests were still running after it. The time between two steps
    counts as a step time only when the engine was busy in between, so an idle gap is
    never mistaken for a slow step. Times are ``time.monotonic()`` seconds.
    """

    def __init__(self, window: int = 16) -> None:
        self.count = 0
        self.last_at = 0.0  # 0: no step yet
        self._busy = False
        self._recent: deque[float] = deque(maxlen=window)

    def step(self, *, busy_after: bool) -> None:
        """One engine step happened now; ``busy_after``: requests are still running."""
        now = time.monotonic()
        if self._busy and self.last_at:
            self._recent.append(now - self.last_at)
        self.count += 1
        self.last_at = now
        self._busy = busy_after

    def pace_s(self) -> float:
        """The longest of the recent step times (0 before two busy steps were seen)."""
        return max(self._recent, default=0.0)
