"""The generic worker loop: claim while the engine has room, run, renew, reclaim, stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from queueing.catalogue import ModelSpec
from queueing.connection import Client, connect, durable_writes
from queueing.errors import ServerError
from queueing.figures import read_figures
from queueing.processes import process_name
from queueing.settings import QueueSettings, Settings, WorkerSettings
from queueing.subscriber import ShardedSubscriber
from queueing.workqueue import ClaimedJob, WorkQueue
from workers.batch_policy import BatchPolicy
from workers.calibration import budget_for
from workers.calibration import load as load_calibration
from workers.engine import Engine
from workers.heartbeat import Load, Progress, healthy_peers, heartbeat
from workers.jobrun import JobRun, JobRunner
from workers.metrics import WorkerMetrics
from workers.watchdog import Watchdog

log = logging.getLogger(__name__)

_EPSILON = 1e-9
_RETRY_S = 0.5
_ABORT_WAIT_S = 2.0
# Used when neither the settings nor a calibration give a budget.
DEFAULT_UNIT_BUDGET = 16.0


class Worker:
    """Pulls one model's jobs into an engine while its in-flight units stay under budget.

    It also never holds more jobs than the engine runs at once, less one slot kept for the
    watchdog's probe, so a backlog waits in the queue in priority order, not in the engine.

    One sharded subscription brings wake notifications (new work in a partition of the
    model) and cancel requests for running jobs. ``burst`` exits once the model's queues are
    empty and nothing is in flight. :meth:`stop` stops claiming; in-flight jobs get
    ``grace_s`` to finish and are then aborted and released. While the watchdog finds the
    engine stalled, the worker claims nothing; when it finds the engine hung or dead, the
    worker gives its jobs back at once and :attr:`failure` says why. ``units_per_s`` (this
    replica's calibrated capacity) tells the watchdog the prefill rate before the engine has
    shown its own.
    """

    def __init__(
        self,
        client: Client,
        spec: ModelSpec,
        engine: Engine,
        *,
        queue_settings: QueueSettings,
        worker_settings: WorkerSettings,
        consumer: str | None = None,
        burst: bool = False,
        grace_s: float = 30.0,
        claim_batch: int = 8,
        unit_budget: float | None = None,
        units_per_s: float | None = None,
    ) -> None:
        self.client = client
        self.spec = spec
        self.settings = worker_settings
        self.consumer = consumer or process_name()
        self.queue = WorkQueue(client, spec, self.consumer, queue_settings)
        self.burst = burst
        self.grace_s = grace_s
        self.claim_batch = claim_batch
        self.budget = unit_budget or worker_settings.unit_budget or DEFAULT_UNIT_BUDGET
        self.engine = engine
        self.max_jobs = max(1, engine.slots - 1)
        self.batch = BatchPolicy(worker_settings, self.budget, self.max_jobs)
        self.failure: str | None = None
        self._kick = asyncio.Event()
        self.runs: dict[str, JobRun] = {}
        self.progress = Progress()
        self.metrics = WorkerMetrics(
            spec.name,
            self.progress,
            self.load,
            self.budget,
            engine.steps,
            self._stalled,
        )
        self.runner = JobRunner(
            self.queue,
            engine,
            worker_settings,
            self.progress,
            self.metrics.job_finished,
            on_engine_done=self._kick.set,
        )
        wake, cancel = self.queue.wake_channels(), self.queue.cancel_channels()
        self._cancel_channels = set(cancel)
        self.notices = ShardedSubscriber(
            client, [*wake, *cancel], self._on_notice, name=f"worker {self.consumer}"
        )
        self.watchdog = Watchdog(
            engine,
            self.load,
            self.fail,
            worker_settings,
            peers=lambda: healthy_peers(client, spec.name, self.consumer),
            prompt_s_per_token=(spec.prompt_weight / 1000 / units_per_s if units_per_s else None),
            on_change=self._kick.set,
        )
        lease_s = queue_settings.lease_ms / 1000
        self.renew_s = min(worker_settings.renew_every_ms / 1000, lease_s / 3)
        self.reclaim_s = lease_s / 2
        self._stopping = False
        self._hurry = asyncio.Event()
        self._woken = asyncio.Event()
        self._cancelling: set[asyncio.Task[None]] = set()

    def load(self) -> Load:
        """Units and jobs in the engine now (not those whose outcome is being written)."""
        running = self._in_engine()
        return Load(sum(r.units for r in running), len(running))

    def _in_engine(self) -> list[JobRun]:
        """Runs still in the engine, in the order they started."""
        return [r for r in self.runs.values() if not r.settling]

    def _stalled(self) -> bool:
        return self.watchdog.stalled is not None

    def health(self) -> dict[str, object]:
        """For the heartbeat: ok or stalled (and why), engine steps, recent step time."""
        steps = self.engine.steps
        stalled = self.watchdog.stalled
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

    def stop(self) -> None:
        """Stop claiming and wind down (safe from a signal handler); twice: abort now."""
        if self._stopping:
            self._hurry.set()
        self._stopping = True
        self._kick.set()

    def fail(self, reason: str) -> None:
        """The engine is unhealthy: stop claiming and give every in-flight job back now."""
        if self.failure is None:
            log.error("worker %s: %s; stepping aside", self.consumer, reason)
            self.failure = reason
        self._stopping = True
        self._hurry.set()
        self._kick.set()

    async def run(self) -> None:
        """Work until stopped (or, in burst mode, until there is nothing left)."""
        await self.queue.ensure_groups()
        metrics_url = self.metrics.start(self.settings.metrics_host, self.settings.metrics_port)
        presence = heartbeat(
            self.client,
            self.consumer,
            self.spec.name,
            self.progress,
            self.load,
            metrics_url,
            self.health,
            {"pool": self.settings.pool, "replica": self.settings.replica},
        )
        tasks = [
            asyncio.create_task(self.notices.run(), name="notices"),
            asyncio.create_task(presence.run(), name="heartbeat"),
            asyncio.create_task(self.watchdog.run(), name="watchdog"),
            asyncio.create_task(self._every(self.renew_s, self._renew), name="renew"),
            asyncio.create_task(self._every(self.reclaim_s, self._reclaim), name="reclaim"),
        ]
        try:
            await self.notices.subscribed.wait()
            await self._claim_loop()
            await self._drain()
        finally:
            leftovers = [t for r in self.runs.values() if (t := r.task) is not None]
            for task in [*tasks, *leftovers, *self._cancelling]:
                task.cancel()
            await asyncio.gather(*tasks, *leftovers, *self._cancelling, return_exceptions=True)
            with contextlib.suppress(ServerError):
                await presence.clear()
            await asyncio.to_thread(self.metrics.stop)
            log.info("worker %s stopped", self.consumer)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._kick.clear()
            load = self.load()
            room = self.budget - load.units
            idle = load.jobs == 0
            if self.watchdog.stalled:
                await self._wait(for_work=False)
                continue
            self._woken.clear()  # a wake from now on means work that this claim may miss
            full = self._full(load) and not idle
            try:
                if not full:
                    higher_waits = self.queue.view.above_batch_waits()
                    batch_room = self.batch.batch_room(self._in_engine(), higher_waits)
                    jobs = await self.queue.claim(
                        max(room, 0.0), self._claimable(load), idle=idle, batch_room=batch_room
                    )
                    if not jobs and self.burst and idle and await self._drained():
                        return
                    if jobs:
                        for job in jobs:
                            self._start(job)
                        continue
                if await self._preempt():
                    await self._wait(for_work=False)  # until a preempted job has left
                    continue
            except ServerError as exc:
                log.warning("claim failed: %s", exc)
                await asyncio.sleep(_RETRY_S)
                continue
            # Full of batch work: an arrival of higher-class work may call for preemption.
            await self._wait(for_work=not full or self.batch.may_preempt(self._in_engine()))

    async def _preempt(self) -> bool:
        """Give the newest batch jobs back when higher-class work waits beyond the threshold
        and does not fit (:class:`BatchPolicy`); True if any was aborted."""
        if not (self.queue.view.above_batch_waits() and self.batch.may_preempt(self._in_engine())):
            return False
        waiting = await self.queue.waiting_above_batch()
        victims = self.batch.victims(self._in_engine(), waiting)
        if victims:
            log.info("preempting %d batch jobs for %.3g waiting units", len(victims), waiting)
        await asyncio.gather(*(self.runner.interrupt(run, preempted=True) for run in victims))
        return bool(victims)

    def _full(self, load: Load) -> bool:
        """No room left: the unit budget is spent or the engine's slots are taken."""
        return self.budget - load.units <= _EPSILON or load.jobs >= self.max_jobs

    def _claimable(self, load: Load) -> int:
        """How many jobs one claim may take now."""
        return max(0, min(self.claim_batch, self.max_jobs - load.jobs))

    async def _wait(self, *, for_work: bool) -> None:
        """Until a job finishes, stop is asked, or (``for_work``) new work is announced; at
        most ``block_ms`` when waiting for work (a re-read, should a notification be lost)."""
        waiters: set[asyncio.Task[Any]] = {asyncio.create_task(self._kick.wait())}
        if for_work:
            waiters.add(asyncio.create_task(self._woken.wait()))
        timeout_s = self.settings.block_ms / 1000 if for_work else None
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _on_notice(self, channel: str, data: str) -> None:
        if channel in self._cancel_channels:
            task = asyncio.create_task(self._on_cancel(data), name=f"cancel {data}")
            self._cancelling.add(task)
            task.add_done_callback(self._cancelling.discard)
        else:
            self.queue.woken(channel, data)
            self._woken.set()

    async def _drained(self) -> bool:
        figures = await read_figures(self.client, self.queue.settings, [self.spec.name])
        now = figures[self.spec.name]
        return now.queued_units <= _EPSILON and now.inflight_units <= _EPSILON

    def _start(self, job: ClaimedJob) -> None:
        if job.id in self.runs:  # our own lapsed lease, reclaimed: the run goes on
            return
        run = JobRun(job)
        self.runs[job.id] = run
        run.task = asyncio.create_task(self._run(run), name=f"job {job.id}")

    async def _run(self, run: JobRun) -> None:
        try:
            await self.runner.run(run)
        finally:
            self.runs.pop(run.job.id, None)
            self._kick.set()

    async def _every(self, interval_s: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except ServerError as exc:
                log.warning("%s failed: %s", step.__name__, exc)
            except Exception:
                log.exception("%s failed", step.__name__)
            await asyncio.sleep(interval_s)

    async def _renew(self) -> None:
        lost, cancelled = await self.queue.renew([r.job for r in self.runs.values()])
        for job_id in lost:
            if (run := self.runs.get(job_id)) is not None:
                log.info("job %s: lease lost to another worker; aborting", job_id)
                await self.runner.interrupt(run, lost=True)
        for job_id in cancelled:
            await self._on_cancel(job_id)

    async def _reclaim(self) -> None:
        if self._stopping or self.watchdog.stalled:
            return
        load = self.load()
        if load.jobs and self._full(load):
            return
        for job in await self.queue.reclaim(self._claimable(load)):
            log.info("job %s: reclaimed (attempt %d)", job.id, job.record.attempts)
            self._start(job)

    async def _on_cancel(self, job_id: str) -> None:
        if (run := self.runs.get(job_id)) is not None:
            log.info("job %s: cancelled; aborting", job_id)
            await self.runner.interrupt(run, cancelled=True)

    async def _drain(self) -> None:
        """Let in-flight jobs finish for ``grace_s``, then abort and release the rest."""
        deadline = time.monotonic() + self.grace_s
        while self.runs and not self._hurry.is_set():
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - time.monotonic()):
                    await self._kick.wait()
            if time.monotonic() >= deadline:
                break
        runs = list(self.runs.values())
        for run in runs:
            log.info("job %s: stopping; aborting and releasing it", run.job.id)
            await self.runner.interrupt(run, shutdown=True)
        pending = [t for r in runs if (t := r.task) is not None]
        if pending:
            wait_s = _ABORT_WAIT_S if self.failure else max(self.grace_s, 5.0)
            await asyncio.wait(pending, timeout=wait_s)
        if self.failure is not None:
            for run in list(self.runs.values()):  # the engine never answered their abort
                await self.runner.give_back(run, f"worker unhealthy: {self.failure}")


async def run_worker(
    url: str,
    spec: ModelSpec,
    engine: Engine,
    settings: Settings,
    *,
    burst: bool = False,
    grace_s: float = 30.0,
    consumer: str | None = None,
) -> str | None:
    """Connect, run a :class:`Worker` until SIGTERM/SIGINT (or drained, in burst mode).

    The in-flight budget comes from the settings, else from this replica's calibration.
    Returns why the worker stepped aside (its engine was unhealthy), or ``None``.
    """
    client = await connect(url, blocking=True)
    budget = await budget_for(client, spec.name, settings.worker)
    calibration = await load_calibration(client, spec.name, settings.worker.replica)
    worker = Worker(
        client,
        spec,
        engine,
        queue_settings=settings.queue,
        worker_settings=settings.worker,
        consumer=consumer,
        burst=burst,
        grace_s=grace_s,
        unit_budget=budget,
        units_per_s=calibration.units_per_s if calibration else None,
    )
    if settings.redis.wait_aof:
        worker.queue.wait_aof = await durable_writes(client, settings.redis)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        log.info("worker %s serving %s, budget %s units", worker.consumer, spec.name, worker.budget)
        await worker.run()
        return worker.failure
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await client.aclose()
