"""The claim loop every worker role shares: claim, renew, reclaim, cancel, drain, stop.

What a job *does* is the role's :class:`Handler` (the LLM worker's engine runs, the preprocess
worker's image preparation), passed in the way arq's worker takes its functions: the loop
holds the leases, the handler decides how much it may take and runs each job to one outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from queueing.connection import Client
from queueing.errors import ServerError
from queueing.processes import process_name
from queueing.subscriber import ShardedSubscriber
from queueing.workqueue import ClaimedJob
from workers.jobrun import JobRun

log = logging.getLogger(__name__)

_RETRY_S = 0.5
_ABORT_WAIT_S = 2.0


@dataclass(frozen=True)
class ClaimStep:
    """What one claim attempt gave: jobs to start, or how to wait before the next attempt
    (``for_work``: also wake when new work is announced, else only when a run ends)."""

    jobs: Sequence[ClaimedJob] = field(default_factory=list)
    for_work: bool = True


class ClaimSource(Protocol):
    """The queues a loop claims from (the model queues, the preprocess streams)."""

    def wake_channels(self) -> list[str]:
        """Sharded channels that announce new work."""
        ...

    def cancel_channels(self) -> list[str]:
        """Sharded channels that ask held jobs to cancel."""
        ...

    def woken(self, channel: str, data: str) -> None:
        """A wake notification arrived."""
        ...

    async def ensure_groups(self) -> None:
        """Create the streams and their consumer group."""
        ...

    async def renew(self, jobs: Sequence[ClaimedJob]) -> tuple[set[str], set[str]]:
        """Renew leases; the ids lost and the ids asked to cancel."""
        ...

    async def reclaim(self, max_count: int) -> list[ClaimedJob]:
        """Take over jobs whose lease lapsed."""
        ...


class LoopControl(Protocol):
    """What a handler may ask of its loop."""

    def kick(self) -> None:
        """Look for room again now (a run left, the handler's state changed)."""
        ...

    def fail(self, reason: str) -> None:
        """The handler cannot serve: stop claiming and give every job back now."""
        ...


class Handler(Protocol):
    """A role's part: how much it may claim, and what a job does."""

    runs: dict[str, JobRun]  # the jobs held, by id (the loop adds and removes them)

    def attach(self, control: LoopControl) -> None:
        """Called once by the loop before anything else."""
        ...

    def paused(self) -> bool:
        """True while the role must claim nothing (e.g. its engine is stalled)."""
        ...

    async def claim(self) -> ClaimStep:
        """Claim what fits now."""
        ...

    def reclaimable(self) -> int:
        """How many lapsed jobs a reclaim may take now."""
        ...

    async def drained(self) -> bool:
        """Burst mode: True once nothing is left to do anywhere."""
        ...

    async def run(self, run: JobRun) -> None:
        """Run the job to one outcome; never raises (but for cancellation)."""
        ...

    async def interrupt(
        self, run: JobRun, *, lost: bool = False, cancelled: bool = False, shutdown: bool = False
    ) -> None:
        """Stop the run for the reason given."""
        ...

    async def give_back(self, run: JobRun, reason: str) -> None:
        """Release a job whose run never ended (after :meth:`LoopControl.fail`)."""
        ...

    def services(self) -> list[Coroutine[Any, Any, None]]:
        """Background tasks the role runs while the loop runs (heartbeat, watchdog)."""
        ...

    async def close(self) -> None:
        """Tidy up once the loop has stopped."""
        ...


class ClaimLoop:
    """Claims for ``handler`` while it has room; renews, reclaims, cancels; drains on stop.

    One sharded subscription brings wake notifications and cancel requests. ``burst`` exits
    once nothing is left (:meth:`Handler.drained`). :meth:`stop` stops claiming; held jobs
    get ``grace_s`` to finish and are then interrupted and released; :meth:`fail` gives them
    back at once and :attr:`failure` says why.
    """

    def __init__(
        self,
        client: Client,
        queue: ClaimSource,
        handler: Handler,
        *,
        lease_ms: int,
        renew_every_ms: int,
        block_ms: int,
        consumer: str | None = None,
        burst: bool = False,
        grace_s: float = 30.0,
    ) -> None:
        self.client = client
        self.queue = queue
        self.handler = handler
        self.consumer = consumer or process_name()
        self.burst = burst
        self.grace_s = grace_s
        self.block_s = block_ms / 1000
        lease_s = lease_ms / 1000
        self.renew_s = min(renew_every_ms / 1000, lease_s / 3)
        self.reclaim_s = lease_s / 2
        self.failure: str | None = None
        self._kick = asyncio.Event()
        self._stopping = False
        self._stop_asked = asyncio.Event()
        self._hurry = asyncio.Event()
        self._woken = asyncio.Event()
        self._cancelling: set[asyncio.Task[None]] = set()
        wake, cancel = queue.wake_channels(), queue.cancel_channels()
        self._cancel_channels = set(cancel)
        self.notices = ShardedSubscriber(
            client, [*wake, *cancel], self._on_notice, name=f"worker {self.consumer}"
        )
        handler.attach(self)

    @property
    def runs(self) -> dict[str, JobRun]:
        """The jobs held now."""
        return self.handler.runs

    def kick(self) -> None:
        """Look for room again now."""
        self._kick.set()

    def stop(self) -> None:
        """Stop claiming and wind down (safe from a signal handler); twice: abort now."""
        if self._stopping:
            self._hurry.set()
        self._stopping = True
        self._stop_asked.set()
        self._kick.set()

    def fail(self, reason: str) -> None:
        """The handler cannot serve: stop claiming and give every held job back now."""
        if self.failure is None:
            log.error("worker %s: %s; stepping aside", self.consumer, reason)
            self.failure = reason
        self._stopping = True
        self._stop_asked.set()
        self._hurry.set()
        self._kick.set()

    async def run(self) -> None:
        """Work until stopped (or, in burst mode, until there is nothing left)."""
        await self.queue.ensure_groups()
        listening = bool(self.notices.channels)  # none: a preprocess worker with no image model
        tasks = [
            *([asyncio.create_task(self.notices.run(), name="notices")] if listening else []),
            *(asyncio.create_task(service) for service in self.handler.services()),
            asyncio.create_task(self._every(self.renew_s, self._renew), name="renew"),
            asyncio.create_task(self._every(self.reclaim_s, self._reclaim), name="reclaim"),
        ]
        try:
            if listening:
                await self._subscribed()
            await self._claim_loop()
            await self._drain()
        finally:
            leftovers = [t for r in self.runs.values() if (t := r.task) is not None]
            for task in [*tasks, *leftovers, *self._cancelling]:
                task.cancel()
            await asyncio.gather(*tasks, *leftovers, *self._cancelling, return_exceptions=True)
            await self.handler.close()
            log.info("worker %s stopped", self.consumer)

    async def _subscribed(self) -> None:
        """Until the notices are subscribed, or stop is asked."""
        subscribed = asyncio.create_task(self.notices.subscribed.wait())
        stopping = asyncio.create_task(self._stop_asked.wait())
        try:
            await asyncio.wait({subscribed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            subscribed.cancel()
            stopping.cancel()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._kick.clear()
            if self.handler.paused():
                await self._wait(for_work=False)
                continue
            self._woken.clear()  # a wake from now on means work that this claim may miss
            try:
                step = await self.handler.claim()
                if not step.jobs and self.burst and not self.runs and await self.handler.drained():
                    return
            except ServerError as exc:
                log.warning("claim failed: %s", exc)
                await asyncio.sleep(_RETRY_S)
                continue
            if step.jobs:
                for job in step.jobs:
                    self._start(job)
                continue
            await self._wait(for_work=step.for_work)

    async def _wait(self, *, for_work: bool) -> None:
        """Until a run ends, stop is asked, or (``for_work``) new work is announced; at most
        ``block_ms`` when waiting for work (a re-read, should a notification be lost)."""
        waiters: set[asyncio.Task[Any]] = {asyncio.create_task(self._kick.wait())}
        if for_work:
            waiters.add(asyncio.create_task(self._woken.wait()))
        timeout_s = self.block_s if for_work else None
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

    def _start(self, job: ClaimedJob) -> None:
        if job.id in self.runs:  # our own lapsed lease, reclaimed: the run goes on
            return
        run = JobRun(job)
        self.runs[job.id] = run
        run.task = asyncio.create_task(self._run(run), name=f"job {job.id}")

    async def _run(self, run: JobRun) -> None:
        try:
            await self.handler.run(run)
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
                await self.handler.interrupt(run, lost=True)
        for job_id in cancelled:
            await self._on_cancel(job_id)

    async def _reclaim(self) -> None:
        if self._stopping or self.handler.paused():
            return
        for job in await self.queue.reclaim(self.handler.reclaimable()):
            log.info("job %s: reclaimed (attempt %d)", job.id, job.record.attempts)
            self._start(job)

    async def _on_cancel(self, job_id: str) -> None:
        if (run := self.runs.get(job_id)) is not None:
            log.info("job %s: cancelled; aborting", job_id)
            await self.handler.interrupt(run, cancelled=True)

    async def _drain(self) -> None:
        """Let held jobs finish for ``grace_s``, then interrupt and release the rest."""
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
            await self.handler.interrupt(run, shutdown=True)
        pending = [t for r in runs if (t := r.task) is not None]
        if pending:
            wait_s = _ABORT_WAIT_S if self.failure else max(self.grace_s, 5.0)
            await asyncio.wait(pending, timeout=wait_s)
        if self.failure is not None:
            for run in list(self.runs.values()):  # the handler never ended these runs
                await self.handler.give_back(run, f"worker unhealthy: {self.failure}")
