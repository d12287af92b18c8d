"""How batch work shares a worker's engine with the classes above it: a share, and preemption.

Batch work uses the capacity the other classes leave idle. While work of a higher class
waits in the queue or runs on this worker, batch jobs may hold at most
``batch_share_when_busy`` of the unit budget (claims of batch work stop beyond it). When more
than ``batch_preempt_units`` of higher-class work waits and does not fit the room left, the
newest batch jobs above that share are aborted in the engine and given back to the queue
(a graceful release: no delivery counted), so they run again later from the start.
"""

from __future__ import annotations

from collections.abc import Iterable

from queueing.keys import JobClass
from queueing.settings import WorkerSettings
from workers.jobrun import JobRun

_EPSILON = 1e-9


def is_batch(run: JobRun) -> bool:
    """True for a job of the batch class."""
    return run.job.record.job_class is JobClass.BATCH


class BatchPolicy:
    """The share and preemption rules of one worker (``budget`` units, ``max_jobs`` jobs)."""

    def __init__(self, settings: WorkerSettings, budget: float, max_jobs: int) -> None:
        self.share_units = settings.batch_share_when_busy * budget
        self.preempt_units = settings.batch_preempt_units
        self.budget = budget
        self.max_jobs = max_jobs

    def batch_room(self, runs: Iterable[JobRun], higher_waits: bool) -> float | None:
        """Units batch jobs may still be claimed for; ``None``: no cap (no higher-class work
        waits or runs here, so batch may use the whole budget)."""
        held = list(runs)
        if not higher_waits and all(is_batch(run) for run in held):
            return None
        return self.share_units - sum(run.units for run in held if is_batch(run))

    def may_preempt(self, runs: Iterable[JobRun]) -> bool:
        """Preemption is on and batch jobs beyond the share run here."""
        if self.preempt_units is None:
            return False
        batch = sum(run.units for run in runs if is_batch(run) and not run.aborted)
        return batch > self.share_units + _EPSILON

    def victims(self, runs: Iterable[JobRun], waiting_units: float) -> list[JobRun]:
        """The newest batch runs to give back so that ``waiting_units`` of higher-class work
        fit the budget and a slot is free; none while the waiting work is at or under the
        threshold, and never so many that batch drops under its share. ``runs`` in start
        order."""
        if self.preempt_units is None or waiting_units <= self.preempt_units + _EPSILON:
            return []
        live = [run for run in runs if not run.aborted]  # aborted ones are on their way out
        room = self.budget - sum(run.units for run in live)
        slots = self.max_jobs - len(live)
        batch = sum(run.units for run in live if is_batch(run))
        chosen: list[JobRun] = []
        for run in reversed([run for run in live if is_batch(run)]):
            if room + _EPSILON >= waiting_units and slots >= 1:
                break
            if batch - run.units < self.share_units - _EPSILON:
                break
            chosen.append(run)
            room, slots, batch = room + run.units, slots + 1, batch - run.units
        return chosen
