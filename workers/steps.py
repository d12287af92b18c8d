"""The engine's pace: how many steps it has made, when the last one was, how long they take."""

from __future__ import annotations

import time
from collections import deque

# A step that prefills fewer prompt tokens says little about the prefill rate.
LARGE_PREFILL = 256


class StepClock:
    """Counts engine steps that produced output for any running request.

    An engine adapter calls :meth:`work_arrived` when a request reaches an idle engine
    and :meth:`step` once per step (from its output path; no I/O), saying whether
    requests were still running after it and how many prompt tokens the step prefilled
    and the next one may prefill. A step's time runs from the step before it (or from
    the work's arrival at an idle engine), so an idle gap is never taken for a slow step.
    Steps that prefilled at least :data:`LARGE_PREFILL` tokens teach the prefill rate.
    Times are ``time.monotonic()`` seconds.
    """

    def __init__(self, window: int = 16) -> None:
        self.count = 0
        self.last_at = 0.0  # 0: no step yet
        self._start: float | None = None  # when the step in progress began
        self._prefill_next = 0
        self._recent: deque[float] = deque(maxlen=window)
        self._per_token: deque[float] = deque(maxlen=window)

    def work_arrived(self) -> None:
        """A request reached the engine; if it was idle, a step begins now."""
        if self._start is None:
            self._start = time.monotonic()

    def step(self, *, busy_after: bool, prefilled: int = 0, prefill_next: int = 0) -> None:
        """One engine step ended now.

        ``busy_after``: requests are still running; ``prefilled``: prompt tokens whose
        prefill this step finished; ``prefill_next``: prompt tokens the next step may
        prefill (as the adapter can tell).
        """
        now = time.monotonic()
        if self._start is not None:
            took = now - self._start
            self._recent.append(took)
            tokens = max(self._prefill_next, prefilled)
            if tokens >= LARGE_PREFILL:
                self._per_token.append(took / tokens)
        self.count += 1
        self.last_at = now
        self._start = now if busy_after else None
        self._prefill_next = prefill_next

    def pace_s(self) -> float:
        """The longest of the recent step times (0 before a step was timed)."""
        return max(self._recent, default=0.0)

    def prefill_s_per_token(self) -> float | None:
        """Seconds per prompt token in recent large prefill steps (the slowest), if any."""
        return max(self._per_token, default=None)
