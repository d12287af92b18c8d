"""The worker's side of the queue: claim, reclaim, renew leases, emit events, complete."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import redis.asyncio as aioredis

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobResult, JobStatus, Usage
from queueing.settings import QueueSettings


class EmitOutcome(IntEnum):
    """What ``emit`` learned about the job."""

    LOST = 0
    OWNED = 1
    CANCELLED = 2


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds a lease on."""

    record: JobRecord

    @property
    def id(self) -> str:
        """The job id."""
        return self.record.id

    @property
    def stream(self) -> str:
        """The queue stream the job's entry lives in."""
        return self.record.stream or ""

    @property
    def entry(self) -> str:
        """The entry id in that stream."""
        return self.record.entry or ""


@dataclass(frozen=True)
class Outcome:
    """How one claimed job ended, for :meth:`WorkQueue.complete_many`."""

    job: ClaimedJob
    status: JobStatus
    result: JobResult | None = None
    usage: Usage | None = None
    error: str | None = None


def _output_share(outcome: Outcome) -> str:
    """``completion_tokens / max_tokens`` of a job that succeeded, else ``""``."""
    max_tokens = outcome.job.record.params.max_tokens
    if outcome.status != JobStatus.SUCCEEDED or outcome.usage is None or max_tokens <= 0:
        return ""
    return f"{min(1.0, outcome.usage.completion_tokens / max_tokens):.4f}"


def _records(rows: Sequence[Sequence[str]]) -> list[ClaimedJob]:
    return [ClaimedJob(JobRecord.from_hash(dict(zip(r[::2], r[1::2], strict=True)))) for r in rows]


class WorkQueue:
    """One worker's view of one model's queues (all classes and bands)."""

    def __init__(
        self, client: aioredis.Redis, spec: ModelSpec, consumer: str, settings: QueueSettings
    ) -> None:
        self.client = client
        self.spec = spec
        self.consumer = consumer
        self.settings = settings
        self.queues = [
            keys.queue(spec.name, job_class, band)
            for job_class in JobClass
            for band in range(spec.bands)
        ]

    def _context(self) -> list[str]:
        s = self.settings
        return [
            self.consumer,
            str(time.time()),
            str(s.result_ttl_s),
            str(s.max_deliveries),
            keys.JOB_TEMPLATE,
            keys.EVENTS_TEMPLATE,
            keys.EVENTS_CHANNEL,
            keys.DEAD,
        ]

    async def claim(self, room: float, max_count: int, *, idle: bool) -> list[ClaimedJob]:
        """Claim up to ``max_count`` jobs whose units fit ``room``, best class and band first.

        An idle worker always gets the best job, however large, so nothing is too big to run.
        """
        rows = await self.client.fcall(
            "iq_claim",
            2 + len(self.queues),
            keys.units(self.spec.name),
            keys.wake(self.spec.name),
            *self.queues,
            *self._context(),
            str(self.settings.ageing_ms),
            str(room),
            str(max_count),
            "1" if idle else "0",
        )
        return _records(rows)

    async def wait_for_work(self, blocking: aioredis.Redis, timeout_s: float) -> None:
        """Block (on a connection of its own) until a job arrives or ``timeout_s`` passes."""
        await blocking.blpop([keys.wake(self.spec.name)], timeout=timeout_s)

    async def reclaim(self, max_count: int) -> list[ClaimedJob]:
        """Take over jobs whose lease lapsed (XAUTOCLAIM); too-often delivered ones go dead."""
        rows = await self.client.fcall(
            "iq_reclaim",
            1 + len(self.queues),
            keys.units(self.spec.name),
            *self.queues,
            *self._context(),
            str(self.settings.lease_ms),
            str(max_count),
        )
        return _records(rows)

    async def renew(self, jobs: Sequence[ClaimedJob]) -> tuple[set[str], set[str]]:
        """Renew leases; returns the ids this worker lost and those asked to cancel."""
        if not jobs:
            return set(), set()
        lost, cancelled = await self.client.fcall(
            "iq_renew",
            len(jobs),
            *(j.stream for j in jobs),
            self.consumer,
            keys.JOB_TEMPLATE,
            *(j.entry for j in jobs),
            *(j.id for j in jobs),
        )
        return set(lost), set(cancelled)

    async def emit(self, job: ClaimedJob, events: Sequence[tuple[str, str]]) -> EmitOutcome:
        """Append events to the job's stream while this worker still owns it."""
        flat = [item for pair in events for item in pair]
        code = await self.client.fcall(
            "iq_emit",
            2,
            keys.job(job.id),
            keys.events(job.id),
            self.consumer,
            job.id,
            keys.EVENTS_CHANNEL,
            *flat,
        )
        return EmitOutcome(int(code))

    async def complete(
        self,
        job: ClaimedJob,
        status: JobStatus,
        *,
        result: JobResult | None = None,
        usage: Usage | None = None,
        error: str | None = None,
    ) -> int:
        """Finish the job atomically: 1 done, 0 already finished (no-op), -1 not ours."""
        outcome = Outcome(job, status, result, usage, error)
        return int(await self.client.fcall("iq_complete", *self._complete_args(outcome)))

    async def complete_many(self, outcomes: Sequence[Outcome]) -> list[int]:
        """Finish many jobs in one round trip, each atomically; codes as :meth:`complete`."""
        if not outcomes:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for outcome in outcomes:
                pipe.fcall("iq_complete", *self._complete_args(outcome))
            codes: list[Any] = await pipe.execute()
        return [int(code) for code in codes]

    def _complete_args(self, outcome: Outcome) -> list[str | int]:
        job = outcome.job
        fields: dict[str, str] = {}
        final: list[str] = []
        if outcome.result is not None:
            fields["result"] = outcome.result.model_dump_json()
            final += ["result", fields["result"]]
        if outcome.usage is not None:
            fields["usage"] = outcome.usage.model_dump_json()
        if outcome.error is not None:
            fields["error"] = outcome.error
            final += ["error", json.dumps({"message": outcome.error})]
        flat = [item for pair in fields.items() for item in pair]
        return [
            5,
            keys.job(job.id),
            keys.events(job.id),
            job.stream,
            keys.units(self.spec.name),
            keys.output_shares(self.spec.name),
            self.consumer,
            job.entry,
            job.id,
            outcome.status.value,
            str(time.time()),
            str(self.settings.result_ttl_s),
            keys.EVENTS_CHANNEL,
            job.record.tenant,
            _output_share(outcome),
            str(self.settings.output_share_alpha),
            str(len(fields)),
            *flat,
            *final,
        ]

    async def release(self, job: ClaimedJob, reason: str, *, graceful: bool) -> bool:
        """Give the job back to its queue; a graceful release does not count as a delivery."""
        code = await self.client.fcall(
            "iq_release",
            5,
            keys.job(job.id),
            keys.events(job.id),
            job.stream,
            keys.units(self.spec.name),
            keys.wake(self.spec.name),
            self.consumer,
            job.entry,
            job.id,
            reason,
            "1" if graceful else "0",
            keys.EVENTS_CHANNEL,
        )
        return bool(code)

    async def ensure_groups(self) -> None:
        """Create every queue stream and its consumer group (idempotent)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                pipe.xgroup_create(queue, keys.GROUP, id="0", mkstream=True)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise reply
