"""vLLM's per-step statistics, read into a :class:`StepClock` (import only with vLLM loaded)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vllm.v1.metrics.loggers import StatLoggerBase

from workers.steps import StepClock


class StepLogger(StatLoggerBase):  # type: ignore[misc]  # vLLM is not type-checked here
    """A stat logger that only counts steps: AsyncLLM's output handler calls ``record``
    once per engine step (every scheduled step returns scheduler stats, also a prefill
    chunk that yields no token, and FINAL_ONLY requests too), in the worker's own loop."""

    def __init__(
        self,
        vllm_config: Any,
        engine_index: int = 0,
        *,
        clock: StepClock,
        prefill_next: Callable[[], int],
    ) -> None:
        self.clock = clock
        self.prefill_next = prefill_next

    def record(
        self,
        scheduler_stats: Any,
        iteration_stats: Any,
        mm_cache_stats: Any = None,
        engine_idx: int = 0,
    ) -> None:
        """One step: count it; busy after it while the scheduler still holds requests."""
        if scheduler_stats is None and iteration_stats is None:
            return
        busy = True
        if scheduler_stats is not None:
            busy = scheduler_stats.num_running_reqs + scheduler_stats.num_waiting_reqs > 0
        prefilled = iteration_stats.num_prompt_tokens if iteration_stats is not None else 0
        self.clock.step(busy_after=busy, prefilled=prefilled, prefill_next=self.prefill_next())

    def log_engine_initialized(self) -> None:
        """Nothing to say."""


def step_logger_factory(
    clock: StepClock, prefill_next: Callable[[], int]
) -> Callable[[Any, int], StepLogger]:
    """What ``AsyncLLM(stat_loggers=[...])`` takes: one :class:`StepLogger` per engine."""

    def make(vllm_config: Any, engine_index: int) -> StepLogger:
        return StepLogger(vllm_config, engine_index, clock=clock, prefill_next=prefill_next)

    return make
