"""The worker's side of the queue: claim across partitions, reclaim, renew, emit, complete."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from queueing import keys
from queueing.calls import COUNTERS, Complete, Emit, Pick, Reclaim, Release, Renew, Take
from queueing.catalogue import ModelSpec
from queueing.connection import Client, WaitAof, fcall, fcall_many
from queueing.errors import ServerError, translated
from queueing.fairshare import SharesArgs
from queueing.keys import JobClass
from queueing.partition_view import PartitionView
from queueing.schemas import JobRecord, JobResult, JobStatus, Usage
from queueing.settings import QueueSettings
from queueing.usage import usage_keys


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
    def partition(self) -> int:
        """The partition the job lives in."""
        return keys.partition_of(self.record.id)

    @property
    def stream(self) -> str:
        """The queue stream the job's entry lives in."""
        return self.record.stream or ""

    @property
    def entry(self) -> str:
        """The entry id in that stream."""
        return self.record.entry or ""


TakeT = TypeVar("TakeT", bound=Take)


@dataclass(frozen=True)
class BatchRoom:
    """What batch jobs may still take in a claim: units and jobs (the worker's batch share)."""

    units: float
    jobs: int

    def less(self, claimed: Sequence[ClaimedJob]) -> BatchRoom:
        """The room left once the batch jobs among ``claimed`` are counted."""
        taken = [job for job in claimed if job.record.job_class is JobClass.BATCH]
        units = self.units - sum(job.record.estimated_units for job in taken)
        return BatchRoom(units, self.jobs - len(taken))


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


def held_jobs(rows: Sequence[Sequence[str]]) -> list[ClaimedJob]:
    """The jobs a take returned (flattened hashes)."""
    return [ClaimedJob(JobRecord.from_hash(dict(zip(r[::2], r[1::2], strict=True)))) for r in rows]


def picked_triples(flat: Sequence[Any]) -> list[tuple[int, str, str]]:
    """A pick's or reclaim's deliveries: (queue index, entry id, job id)."""
    return [(int(flat[i]), str(flat[i + 1]), str(flat[i + 2])) for i in range(0, len(flat), 3)]


def checked(reply: Any) -> Any:
    """A pipelined reply, or the server's error raised as inferq's."""
    if isinstance(reply, Exception):
        raise ServerError(f"the queue server failed: {reply}")
    return reply


def take_call(
    call: type[TakeT],
    model: str,
    partition: int,
    streams: Sequence[str],
    picked: list[tuple[int, str, str]],
    consumer: str,
    settings: QueueSettings,
) -> TakeT:
    """The take (LLM or preprocess tier) of ``picked`` from ``streams`` of one partition."""
    now = time.time()
    usage, usage_total = usage_keys(partition, now, settings)
    return call(
        units=keys.units(model, partition),
        dead=keys.dead(partition),
        channel=keys.events_channel(partition),
        jobs=[k for q, _, j in picked for k in (streams[q], keys.job(j), keys.events(j))],
        consumer=consumer,
        now=now,
        ttl=settings.result_ttl_s,
        max_deliveries=settings.max_deliveries,
        entries=[item for _, entry, j in picked for item in (entry, j)],
        usage=usage,
        usage_total=usage_total,
        usage_ttl=settings.usage_ttl_s,
    )


class WorkQueue:
    """One worker's view of one model's queues: every partition, class and band.

    A claim goes to the partition whose best waiting job scores best in the worker's
    :class:`PartitionView` (class, then band, less ageing), bounded by the next-best
    partition's score (plus ``claim_slack_ms`` of arrival time), so jobs leave in the order
    one partition would give them, give or take that slack within a class and band; the view
    is kept by the claims' own replies, by wake notifications, and by a re-read of every
    partition's head every ``view_refresh_s`` and whenever it knows of no work.
    """

    def __init__(
        self, client: Client, spec: ModelSpec, consumer: str, settings: QueueSettings
    ) -> None:
        self.client = client
        self.spec = spec
        self.consumer = consumer
        self.settings = settings
        self.partitions = settings.partitions_of(spec.name)
        self.qfields = [keys.queue_field(c, b) for c in JobClass for b in range(spec.bands)]
        self.queues = [
            [keys.queue(spec.name, p, c, b) for c in JobClass for b in range(spec.bands)]
            for p in range(self.partitions)
        ]
        # What a pick reads besides the streams: per queue its waiting and arrival sets, per
        # class its active tenants.
        self._fair_keys = [
            [keys.waiting(spec.name, p, c, b) for c in JobClass for b in range(spec.bands)]
            + [keys.arrivals(spec.name, p, c, b) for c in JobClass for b in range(spec.bands)]
            + [keys.active(spec.name, p, c) for c in JobClass]
            for p in range(self.partitions)
        ]
        self.shares = SharesArgs(
            client, spec.name, self.partitions, settings.shares_refresh_s, settings.reserve_burst_s
        )
        self._partition_of_wake = {
            keys.wake_channel(spec.name, p): p for p in range(self.partitions)
        }
        self._rank_of = {qfield: rank for rank, qfield in enumerate(self.qfields)}
        self.batch_from = JobClass.BATCH.rank * spec.bands  # the first batch queue's rank
        self.view = PartitionView(settings.ageing_ms, self.batch_from)
        self._slack = settings.claim_slack_ms / settings.ageing_ms  # in score units
        self._refreshed = float("-inf")
        # Set (see :func:`durable_writes`): a completion returns once it is fsynced.
        self.wait_aof: WaitAof | None = None

    def wake_channels(self) -> list[str]:
        """The sharded channels that announce new work in this model's partitions."""
        return list(self._partition_of_wake)

    def cancel_channels(self) -> list[str]:
        """The sharded channels that ask running jobs of these partitions to cancel."""
        return [keys.cancel_channel(p) for p in range(self.partitions)]

    def woken(self, channel: str, qfield: str) -> None:
        """A wake notification: a job of ``qfield`` (class:band) is waiting in that partition;
        ``class:band+``: its tenant joined others there (the partition is visited next)."""
        joined = qfield.endswith("+")
        partition, rank = (
            self._partition_of_wake.get(channel),
            self._rank_of.get(qfield.rstrip("+")),
        )
        if partition is not None and rank is not None:
            self.view.arrived(partition, rank, time.time() * 1000, joined=joined)

    def _pick(
        self,
        partition: int,
        now_ms: int,
        room: float,
        max_count: int,
        idle: bool,
        bound: str,
        batch_room: BatchRoom | None = None,
    ) -> Pick:
        return Pick(
            units=keys.units(self.spec.name, partition),
            fair=keys.fair(self.spec.name, partition),
            queues=[*self.queues[partition], *self._fair_keys[partition]],
            consumer=self.consumer,
            now_ms=now_ms,
            ageing_ms=self.settings.ageing_ms,
            room=room,
            max_count=max_count,
            idle=int(idle),
            bound=bound,
            batch_from=self.batch_from,
            batch_room="" if batch_room is None else repr(max(batch_room.units, 0.0)),
            batch_slots="" if batch_room is None else str(max(batch_room.jobs, 0)),
            weights=self.shares.weights,
            reserved=self.shares.reserved,
            qfields=self.qfields,
        )

    async def refresh(self) -> None:
        """Re-read the best waiting job of every partition (one pass, no job delivered)."""
        now_ms = int(time.time() * 1000)
        calls = [self._pick(p, now_ms, 0.0, 0, False, "") for p in range(self.partitions)]
        replies = await fcall_many(self.client, calls)
        for partition, reply in enumerate(replies):
            _, rank, ts, _, due_rank, due_ms = checked(reply)
            self.view.set(partition, int(rank), float(ts), due=(int(due_rank), float(due_ms)))
        self._refreshed = time.monotonic()

    def _refresh_every(self) -> float:
        """Seconds between re-reads of every partition: more often while a reservation applies,
        since only a partition's own picks say when its credit is due, and a partition no claim
        visits would cap its credit unspent."""
        every = self.settings.view_refresh_s
        if self.shares.any_reserved:
            every = min(every, self.settings.reserve_burst_s / 2)
        return every

    async def claim(
        self, room: float, max_count: int, *, idle: bool, batch_room: BatchRoom | None = None
    ) -> list[ClaimedJob]:
        """Claim up to ``max_count`` jobs whose units fit ``room``, best class and band first.

        One partition's run of the best jobs per call (a pick and a take: two round trips), so
        they start at once; the caller claims again while it has room. An idle worker always
        gets the best job, however large, so nothing is too big to run. Batch jobs must also
        fit ``batch_room`` when it is given (the worker's batch share: units and jobs).
        """
        reservations_changed = await self.shares.refresh()
        stale = time.monotonic() - self._refreshed >= self._refresh_every()
        # Re-read every partition when stale, when nothing is known (a wake may have been
        # missed), or when reservations changed (each reply says when credit there is due).
        if stale or self.view.empty or reservations_changed:
            await self.refresh()
        claimed: list[ClaimedJob] = []
        for _ in range(self.partitions):  # picks that find nothing correct the view
            now_ms = int(time.time() * 1000)  # the same clock for the bound and the pick
            ranked = self.view.ranked(now_ms)
            if not ranked or len(claimed) >= max_count:
                break
            partition, bound = ranked[0][1], ranked[1][0] if len(ranked) > 1 else None
            count = max_count - len(claimed)
            if self.view.nudged(partition, now_ms):
                # A tenant joined, or reserved credit is due: its job now (the partition's
                # first by fair share or credit), the rest in their turn.
                bound, count = None, 1
            call = self._pick(
                partition,
                now_ms,
                room,
                count,
                idle and not claimed,
                "" if bound is None else repr(bound + self._slack),
                batch_room,
            )
            picked, rank, ts, stop, due_rank, due_ms = await fcall(self.client, call)
            self.view.set(
                partition,
                int(rank),
                float(ts),
                picked_at=now_ms if picked else None,
                due=(int(due_rank), float(due_ms)),
            )
            jobs = await self._take(partition, picked_triples(picked))
            claimed += jobs
            room -= sum(job.record.estimated_units for job in jobs)
            if batch_room is not None:
                batch_room = batch_room.less(jobs)
            if jobs or stop in ("room", "share"):  # the best jobs now, or the best does not fit
                break
        return claimed

    async def waiting_above_batch(self) -> float:
        """Units queued in the classes above batch, summed over the partitions."""
        qfields = [f for f in self.qfields if self._rank_of[f] < self.batch_from]
        fields = [COUNTERS["UNITS_OF"] + f for f in qfields]
        with translated("cannot read the queued units"):
            async with self.client.pipeline(transaction=False) as pipe:
                for partition in range(self.partitions):
                    pipe.hmget(keys.units(self.spec.name, partition), fields)
                replies: list[list[str | None]] = await pipe.execute()
        return sum(float(value or 0) for reply in replies for value in reply)

    async def _take(self, partition: int, picked: list[tuple[int, str, str]]) -> list[ClaimedJob]:
        if not picked:
            return []
        return held_jobs(await fcall(self.client, self._take_call(partition, picked)))

    def _take_call(self, partition: int, picked: list[tuple[int, str, str]]) -> Take:
        return take_call(
            Take,
            self.spec.name,
            partition,
            self.queues[partition],
            picked,
            self.consumer,
            self.settings,
        )

    async def reclaim(self, max_count: int) -> list[ClaimedJob]:
        """Take over jobs whose lease lapsed (XAUTOCLAIM); too-often delivered ones go dead."""
        if max_count <= 0:
            return []
        calls = [
            Reclaim(
                queues=self.queues[p],
                consumer=self.consumer,
                min_idle_ms=self.settings.lease_ms,
                max_count=max_count,
            )
            for p in range(self.partitions)
        ]
        replies = await fcall_many(self.client, calls)
        takes = [
            self._take_call(p, picked_triples(checked(reply)))
            for p, reply in enumerate(replies)
            if reply
        ]
        claimed: list[ClaimedJob] = []
        for reply in await fcall_many(self.client, takes):
            claimed += held_jobs(checked(reply))
        return claimed

    async def renew(self, jobs: Sequence[ClaimedJob]) -> tuple[set[str], set[str]]:
        """Renew leases; returns the ids this worker lost and those asked to cancel."""
        return await renew_leases(self.client, self.consumer, jobs)

    async def emit(self, job: ClaimedJob, events: Sequence[tuple[str, str]]) -> EmitOutcome:
        """Append events to the job's stream while this worker still owns it."""
        call = Emit(
            job=keys.job(job.id),
            events=keys.events(job.id),
            channel=keys.events_channel(job.partition),
            consumer=self.consumer,
            job_id=job.id,
            pairs=[item for pair in events for item in pair],
        )
        return EmitOutcome(int(await fcall(self.client, call)))

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
        return (await self.complete_many([outcome]))[0]

    async def complete_many(self, outcomes: Sequence[Outcome]) -> list[int]:
        """Finish many jobs in one round trip per node, each atomically; codes as
        :meth:`complete`."""
        calls = [self._complete_call(o) for o in outcomes]
        replies = await fcall_many(self.client, calls, wait_aof=self.wait_aof)
        return [int(checked(reply)) for reply in replies]

    def _complete_call(self, outcome: Outcome) -> Complete:
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
        now = time.time()
        usage, usage_total = usage_keys(job.partition, now, self.settings)
        return Complete(
            job=keys.job(job.id),
            events=keys.events(job.id),
            queue=job.stream,
            units=keys.units(self.spec.name, job.partition),
            shares=keys.output_shares(self.spec.name, job.partition),
            channel=keys.events_channel(job.partition),
            consumer=self.consumer,
            entry=job.entry,
            job_id=job.id,
            status=outcome.status.value,
            now=now,
            ttl=self.settings.result_ttl_s,
            tenant=job.record.tenant,
            share=_output_share(outcome),
            alpha=self.settings.output_share_alpha,
            nfields=len(fields),
            rest=[*(item for pair in fields.items() for item in pair), *final],
            usage=usage,
            usage_total=usage_total,
            usage_ttl=self.settings.usage_ttl_s,
        )

    async def release(self, job: ClaimedJob, reason: str, *, graceful: bool) -> bool:
        """Give the job back to its queue; a graceful release does not count as a delivery."""
        record = job.record
        call = Release(
            job=keys.job(job.id),
            events=keys.events(job.id),
            queue=job.stream,
            units=keys.units(self.spec.name, job.partition),
            wake=keys.wake_channel(self.spec.name, job.partition),
            channel=keys.events_channel(job.partition),
            waiting=keys.waiting(self.spec.name, job.partition, record.job_class, record.band),
            fair=keys.fair(self.spec.name, job.partition),
            active=keys.active(self.spec.name, job.partition, record.job_class),
            order=keys.arrivals(self.spec.name, job.partition, record.job_class, record.band),
            consumer=self.consumer,
            entry=job.entry,
            job_id=job.id,
            reason=reason,
            graceful=int(graceful),
        )
        return bool(await fcall(self.client, call))

    async def ensure_groups(self) -> None:
        """Create every queue stream and its consumer group (idempotent)."""
        with translated("cannot create the queues"):
            async with self.client.pipeline(transaction=False) as pipe:
                for queues in self.queues:
                    for queue in queues:
                        pipe.xgroup_create(queue, keys.GROUP, id="0", mkstream=True)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise ServerError(f"cannot create the queues: {reply}")


async def renew_leases(
    client: Client, consumer: str, jobs: Sequence[ClaimedJob]
) -> tuple[set[str], set[str]]:
    """Renew ``consumer``'s leases on ``jobs`` (one call per partition, each on its slot);
    returns the ids it lost and those asked to cancel."""
    by_partition: dict[int, list[ClaimedJob]] = defaultdict(list)
    for job in jobs:
        by_partition[job.partition].append(job)
    groups = list(by_partition.values())
    calls = [
        Renew(
            jobs=[k for j in group for k in (j.stream, keys.job(j.id))],
            consumer=consumer,
            entries=[j.entry for j in group],
        )
        for group in groups
    ]
    lost: set[str] = set()
    cancelled: set[str] = set()
    for group, reply in zip(groups, await fcall_many(client, calls), strict=True):
        gone, asked = checked(reply)
        lost |= {group[int(i)].id for i in gone}
        cancelled |= {group[int(i)].id for i in asked}
    return lost, cancelled
