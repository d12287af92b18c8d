"""How batch work shares a worker's engine with the classes above it: a share, and preemption.

Batch work uses the capacity the other classes leave idle. While work of a higher class is
*active* (it waits in the queue or runs on this worker, or did so within
``batch_busy_hold_s``), batch jobs may hold at most ``batch_share_when_busy`` of the unit
budget and of the engine's job slots: claims of batch work stop at the share. When more than
``batch_preempt_units`` of higher-class work waits while batch holds more than its share, the
newest batch jobs beyond the share are aborted in the engine and given back to the queue (a
graceful release: no delivery counted), so they run again later from the start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from queueing.keys import JobClass
from queueing.settings import WorkerSettings
from queueing.workqueue import BatchRoom
from workers.jobrun import JobRun

_EPSILON = 1e-9


def is_batch(run: JobRun) -> bool:
    """True for a job of the batch class."""
    return run.job.record.job_class is JobClass.BATCH


class BatchPolicy:
    """The share and preemption rules of one worker (``budget`` units, ``max_jobs`` jobs)."""

    def __init__(
        self,
        settings: WorkerSettings,
        budget: float,
        max_jobs: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.share_units = settings.batch_share_when_busy * budget
        self.share_jobs = math.floor(settings.batch_share_when_busy * max_jobs + _EPSILON)
        self.preempt_units = settings.batch_preempt_units if settings.batch_preempt else None
        self.hold_s = settings.batch_busy_hold_s
        self.clock = clock
        self._busy_until = -math.inf

    def busy(self, runs: Iterable[JobRun], higher_waits: bool) -> bool:
        """Higher-class work waits or runs here now, or did within the hold time."""
        now = self.clock()
        if higher_waits or not all(is_batch(run) for run in runs):
            self._busy_until = now + self.hold_s
            return True
        return now < self._busy_until

    def batch_room(self, runs: Iterable[JobRun], higher_waits: bool) -> BatchRoom | None:
        """What batch jobs may still be claimed for; ``None``: no cap (no higher-class work
        is active, so batch may use the whole engine)."""
        held = list(runs)
        if not self.busy(held, higher_waits):
            return None
        batch = [run for run in held if is_batch(run)]
        return BatchRoom(
            self.share_units - sum(run.units for run in batch), self.share_jobs - len(batch)
        )

    def _over_share(self, batch: list[JobRun]) -> bool:
        units = sum(run.units for run in batch)
        return units > self.share_units + _EPSILON or len(batch) > self.share_jobs

    def may_preempt(self, runs: Iterable[JobRun]) -> bool:
        """Preemption is on and batch jobs beyond the share run here."""
        batch = [run for run in runs if is_batch(run) and not run.aborted]
        return self.preempt_units is not None and self._over_share(batch)

    def victims(self, runs: Iterable[JobRun], waiting_units: float) -> list[JobRun]:
        """The batch runs to give back while ``waiting_units`` of higher-class work wait:
        the newest first (the least work lost), until batch is back within its share; none
        while the waiting work is at or under the threshold. ``runs`` in start order."""
        if self.preempt_units is None or waiting_units <= self.preempt_units + _EPSILON:
            return []
        # Aborted runs are on their way out already.
        batch = [run for run in runs if is_batch(run) and not run.aborted]
        chosen: list[JobRun] = []
        while batch and self._over_share(batch):
            chosen.append(batch.pop())
        return chosen
