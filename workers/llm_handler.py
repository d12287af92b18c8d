"""The LLM worker's handler: an engine fed while its in-flight units stay under budget."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from queueing.catalogue import ModelSpec
from queueing.connection import Client
from queueing.errors import ServerError
from queueing.figures import read_figures
from queueing.images import PreparedImages
from queueing.presence import Presence
from queueing.settings import WorkerSettings
from queueing.workqueue import WorkQueue
from workers.batch_policy import BatchPolicy
from workers.claimloop import ClaimStep, LoopControl
from workers.engine import Engine
from workers.heartbeat import Load, Progress, healthy_peers, heartbeat
from workers.jobrun import JobRun, JobRunner
from workers.metrics import WorkerMetrics
from workers.watchdog import Watchdog

log = logging.getLogger(__name__)

_EPSILON = 1e-9
# Used when neither the settings nor a calibration give a budget.
DEFAULT_UNIT_BUDGET = 16.0


class LlmHandler:
    """Runs one model's jobs in an engine while their units stay under ``budget``.

    It never holds more jobs than the engine runs at once, less one slot kept for the
    watchdog's probe, so a backlog waits in the queue in priority order, not in the engine.
    While the watchdog finds the engine stalled it claims nothing; when it finds the engine
    hung or dead, the loop gives the jobs back at once. ``units_per_s`` (this replica's
    calibrated capacity) tells the watchdog the prefill rate before the engine has shown it.
    """

    def __init__(
        self,
        client: Client,
        queue: WorkQueue,
        engine: Engine,
        settings: WorkerSettings,
        *,
        claim_batch: int = 8,
        unit_budget: float | None = None,
        units_per_s: float | None = None,
        images: PreparedImages | None = None,
    ) -> None:
        self.client = client
        self.images = images
        self.queue = queue
        self.spec: ModelSpec = queue.spec
        self.engine = engine
        self.settings = settings
        self.claim_batch = claim_batch
        self.units_per_s = units_per_s
        self.budget = unit_budget or settings.unit_budget or DEFAULT_UNIT_BUDGET
        self.max_jobs = max(1, engine.slots - 1)
        self.batch = BatchPolicy(settings, self.budget, self.max_jobs)
        self.runs: dict[str, JobRun] = {}
        self.progress = Progress()
        self.metrics = WorkerMetrics(
            self.spec.name, self.progress, self.load, self.budget, engine.steps, self.paused
        )
        self.runner: JobRunner | None = None
        self.watchdog: Watchdog | None = None
        self._presence: Presence | None = None

    def attach(self, control: LoopControl) -> None:
        """Build the runner and the watchdog, which report to the loop."""
        consumer = self.queue.consumer
        self.runner = JobRunner(
            self.queue,
            self.engine,
            self.settings,
            self.progress,
            self.metrics.job_finished,
            on_engine_done=control.kick,
            images=self.images,
        )
        self.watchdog = Watchdog(
            self.engine,
            self.load,
            control.fail,
            self.settings,
            peers=lambda: healthy_peers(self.client, self.spec.name, consumer),
            prompt_s_per_token=(
                self.spec.prompt_weight / 1000 / self.units_per_s if self.units_per_s else None
            ),
            on_change=control.kick,
        )

    def _runner(self) -> JobRunner:
        assert self.runner is not None, "attach() first"
        return self.runner

    def load(self) -> Load:
        """Units and jobs in the engine now (not those whose outcome is being written)."""
        running = self._in_engine()
        return Load(sum(r.units for r in running), len(running))

    def _in_engine(self) -> list[JobRun]:
        """Runs still in the engine, in the order they started."""
        return [r for r in self.runs.values() if not r.settling]

    def paused(self) -> bool:
        """True while the watchdog finds the engine stalled."""
        return self.watchdog is not None and self.watchdog.stalled is not None

    def health(self) -> dict[str, object]:
        """For the heartbeat: ok or stalled (and why), engine steps, recent step time."""
        steps = self.engine.steps
        stalled = self.watchdog.stalled if self.watchdog else None
        fields: dict[str, object] = {
            "health": "stalled" if stalled else "ok",
            "stalled": stalled or "",
            "engine_steps": steps.count,
            "step_s": round(steps.pace_s(), 3),
        }
        if steps.last_at:
            last_step = time.time() - (time.monotonic() - steps.last_at)
            fields["last_progress"] = max(self.progress.last_progress, last_step)
        return fields

    async def claim(self) -> ClaimStep:
        """Claim what fits the budget and the slots; preempt batch work when it must yield."""
        load = self.load()
        idle = load.jobs == 0
        full = self._full(load) and not idle
        if not full:
            higher_waits = self.queue.view.above_batch_waits()
            batch_room = self.batch.batch_room(self._in_engine(), higher_waits)
            room = max(self.budget - load.units, 0.0)
            jobs = await self.queue.claim(
                room, self._claimable(load), idle=idle, batch_room=batch_room
            )
            if jobs:
                return ClaimStep(jobs)
        if await self._preempt():
            return ClaimStep(for_work=False)  # until a preempted job has left
        # Full of batch work: an arrival of higher-class work may call for preemption.
        return ClaimStep(for_work=not full or self.batch.may_preempt(self._in_engine()))

    async def _preempt(self) -> bool:
        """Give the newest batch jobs back when higher-class work waits beyond the threshold
        and does not fit (:class:`BatchPolicy`); True if any was aborted."""
        if not (self.queue.view.above_batch_waits() and self.batch.may_preempt(self._in_engine())):
            return False
        waiting = await self.queue.waiting_above_batch()
        victims = self.batch.victims(self._in_engine(), waiting)
        if victims:
            log.info("preempting %d batch jobs for %.3g waiting units", len(victims), waiting)
        runner = self._runner()
        await asyncio.gather(*(runner.interrupt(run, preempted=True) for run in victims))
        return bool(victims)

    def _full(self, load: Load) -> bool:
        """No room left: the unit budget is spent or the engine's slots are taken."""
        return self.budget - load.units <= _EPSILON or load.jobs >= self.max_jobs

    def _claimable(self, load: Load) -> int:
        """How many jobs one claim may take now."""
        return max(0, min(self.claim_batch, self.max_jobs - load.jobs))

    def reclaimable(self) -> int:
        """Jobs a reclaim may take: none while full, else as a claim."""
        load = self.load()
        return 0 if load.jobs and self._full(load) else self._claimable(load)

    async def drained(self) -> bool:
        """The model's queues are empty and nothing is in flight anywhere."""
        figures = await read_figures(self.client, self.queue.settings, [self.spec.name])
        now = figures[self.spec.name]
        return now.queued_units <= _EPSILON and now.inflight_units <= _EPSILON

    async def run(self, run: JobRun) -> None:
        """Through the engine to one outcome."""
        await self._runner().run(run)

    async def interrupt(
        self, run: JobRun, *, lost: bool = False, cancelled: bool = False, shutdown: bool = False
    ) -> None:
        """Abort the engine request, saying why."""
        await self._runner().interrupt(run, lost=lost, cancelled=cancelled, shutdown=shutdown)

    async def give_back(self, run: JobRun, reason: str) -> None:
        """Release the job (the engine never answered its abort)."""
        await self._runner().give_back(run, reason)

    def services(self) -> list[Coroutine[Any, Any, None]]:
        """Metrics (served from a thread), the heartbeat and the watchdog."""
        assert self.watchdog is not None, "attach() first"
        metrics_url = self.metrics.start(self.settings.metrics_host, self.settings.metrics_port)
        self._presence = heartbeat(
            self.client,
            self.queue.consumer,
            self.spec.name,
            self.progress,
            self.load,
            metrics_url,
            self.health,
            {"pool": self.settings.pool, "replica": self.settings.replica},
        )
        return [self._presence.run(), self.watchdog.run()]

    async def close(self) -> None:
        """Leave the registry and stop serving metrics."""
        if self._presence is not None:
            with contextlib.suppress(ServerError):
                await self._presence.clear()
        await asyncio.to_thread(self.metrics.stop)
