"""The API's side of the queue: place and enqueue jobs, look them up, cancel, read events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from queueing import keys
from queueing.calls import Cancel, Enqueue, Prequeue
from queueing.catalogue import ModelSpec
from queueing.connection import Client, WaitAof, durable_writes, fcall, fcall_many
from queueing.errors import JobNotFound, QueueFull, ServerError, translated
from queueing.events import JobEvent
from queueing.figures import read_counters, totals
from queueing.placement import Placement
from queueing.schemas import JobRecord
from queueing.settings import QueueSettings, RedisSettings
from queueing.usage import usage_keys

_GROUP_COMMIT_MAX = 512  # jobs in one group commit
_FLUSHES = 48  # group commits on the wire at once: new jobs go out while others wait for fsync


class JobStore:
    """Durable enqueue (fsynced before it returns) and job reads.

    Enqueues that arrive while others are on the wire go together in the next round trip:
    one pipeline per node followed by one ``WAITAOF`` there, so many requests share one
    fsync wait (a group commit). A few group commits may be on the wire at once, so new jobs
    reach the queue (and the workers) while earlier ones wait for their fsync.
    """

    def __init__(
        self,
        client: Client,
        settings: QueueSettings,
        redis_settings: RedisSettings | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.redis_settings = redis_settings or RedisSettings()
        self.placement = Placement(settings)
        self.wait_aof: WaitAof | None = None
        self._shares: dict[tuple[str, str], tuple[float, float | None]] = {}
        self._pending: list[tuple[Enqueue | Prequeue, JobRecord, asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    def place(self, model: str, tenant: str, idempotency_key: str | None = None) -> int:
        """The partition a new job of ``model`` goes to."""
        return self.placement.choose(model, tenant, idempotency_key)

    async def output_share(self, model: str, tenant: str) -> float | None:
        """The tenant's recent share of ``max_tokens`` used on ``model`` (cached briefly).

        Each partition keeps its own moving average (completion stays on the job's slot);
        this is their mean, read in one pipelined pass.
        """
        now = time.monotonic()
        cached = self._shares.get((model, tenant))
        if cached is not None and cached[0] > now:
            return cached[1]
        with translated("cannot read output shares"):
            async with self.client.pipeline(transaction=False) as pipe:
                for partition in range(self.settings.partitions_of(model)):
                    pipe.hget(keys.output_shares(model, partition), tenant)
                raw: list[str | None] = await pipe.execute()
        known = [float(value) for value in raw if value is not None]
        share = sum(known) / len(known) if known else None
        self._shares[(model, tenant)] = (now + self.settings.output_share_cache_s, share)
        return share

    async def check_durability(self) -> bool:
        """Use ``WAITAOF`` on the acknowledged path where the server supports it."""
        self.wait_aof = await durable_writes(self.client, self.redis_settings)
        return self.wait_aof is not None

    async def enqueue(self, record: JobRecord, *, idempotency_key: str | None = None) -> str:
        """Store and queue ``record`` atomically; returns its id (an earlier one on replay)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((self._enqueue_call(record, idempotency_key), record, future))
        if len(self._flushing) < _FLUSHES:
            task = asyncio.create_task(self._flush(), name="inferq group commit")
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        accepted = self._accepted(record, await future)
        if isinstance(accepted, QueueFull):
            raise accepted
        return accepted

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[:_GROUP_COMMIT_MAX]
            del self._pending[:_GROUP_COMMIT_MAX]
            try:
                replies = await fcall_many(
                    self.client, [call for call, _, _ in batch], wait_aof=self.wait_aof
                )
            except Exception as exc:
                replies = [exc] * len(batch)
            for (_, _, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(_as_inferq(reply))
                else:
                    future.set_result(reply)

    async def enqueue_many(
        self, records: Sequence[JobRecord], idempotency_keys: Sequence[str | None] = ()
    ) -> list[str | QueueFull]:
        """Store and queue many jobs in one round trip per node, each atomically.

        Returns, per record, its id (an earlier one on replay) or the :class:`QueueFull` that
        :meth:`enqueue` would have raised for it.
        """
        idem = list(idempotency_keys) or [None] * len(records)
        calls = [self._enqueue_call(r, k) for r, k in zip(records, idem, strict=True)]
        replies = await fcall_many(self.client, calls, wait_aof=self.wait_aof)
        out: list[str | QueueFull] = []
        for record, reply in zip(records, replies, strict=True):
            if isinstance(reply, Exception):
                raise _as_inferq(reply)
            out.append(self._accepted(record, reply))
        return out

    def _enqueue_call(self, record: JobRecord, idempotency_key: str | None) -> Enqueue | Prequeue:
        if record.images:  # its images are prepared first (the preprocess tier)
            return self._prequeue_call(record, idempotency_key)
        partition = keys.partition_of(record.id)
        queue = keys.waiting(record.model, partition, record.job_class, record.band)
        fields = {**record.to_hash(), "stream": queue}
        return Enqueue(
            job=keys.job(record.id),
            events=keys.events(record.id),
            queue=queue,
            units=keys.units(record.model, partition),
            wake=keys.wake_channel(record.model, partition),
            fair=keys.fair(record.model, partition),
            active=keys.active(record.model, partition, record.job_class),
            order=keys.arrivals(record.model, partition, record.job_class, record.band),
            idem=(
                [keys.idempotency(partition, record.tenant, idempotency_key)]
                if idempotency_key
                else []
            ),
            job_id=record.id,
            cost=record.estimated_units,
            qfield=keys.queue_field(record.job_class, record.band),
            ceiling=self.settings.max_queued_units / self.settings.partitions_of(record.model),
            idem_ttl=self.settings.result_ttl_s,
            tenant=record.tenant,
            fields=[item for pair in fields.items() for item in pair],
        )

    def _prequeue_call(self, record: JobRecord, idempotency_key: str | None) -> Prequeue:
        partition = keys.partition_of(record.id)
        queue = keys.prequeue(record.model, partition, record.job_class)
        fields = {**record.to_hash(), "stream": queue}
        return Prequeue(
            job=keys.job(record.id),
            events=keys.events(record.id),
            queue=queue,
            units=keys.units(record.model, partition),
            wake=keys.prewake_channel(partition),
            idem=(
                [keys.idempotency(partition, record.tenant, idempotency_key)]
                if idempotency_key
                else []
            ),
            job_id=record.id,
            model=record.model,
            cost=record.estimated_units,
            ceiling=self.settings.max_queued_units / self.settings.partitions_of(record.model),
            idem_ttl=self.settings.result_ttl_s,
            fields=[item for pair in fields.items() for item in pair],
        )

    def _accepted(self, record: JobRecord, reply: Any) -> str | QueueFull:
        code, value = reply
        if int(code) < 0:
            return QueueFull(
                f"model '{record.model}' is past its ceiling of "
                f"{self.settings.max_queued_units:g} queued units "
                f"({float(value):.1f} in this job's partition); retry later",
                retry_after_s=self.settings.retry_after_s,
            )
        return str(value)

    async def unit_counters(self, spec: ModelSpec) -> dict[str, float]:
        """The model's unit counters (queued, inflight, per queue, arrivals...), summed over
        its partitions."""
        return totals((await read_counters(self.client, self.settings, [spec.name]))[spec.name])

    async def ping(self) -> bool:
        """True when the queue server answers."""
        with translated("the queue server does not answer"):
            return bool(await self.client.ping())

    async def get(self, job_id: str, tenant: str) -> JobRecord:
        """The job, if it exists and belongs to ``tenant``."""
        try:
            key = keys.job(job_id)
        except keys.InvalidJobId:
            raise JobNotFound(f"No job with id '{job_id}'", param="id") from None
        with translated("cannot read the job"):
            raw = await self.client.hgetall(key)
        if not raw or raw.get("tenant") != tenant:
            raise JobNotFound(f"No job with id '{job_id}'", param="id")
        return JobRecord.from_hash(raw)

    async def cancel(self, job_id: str, tenant: str) -> JobRecord:
        """Cancel: a queued job is removed at once; a running one is aborted by its worker."""
        record = await self.get(job_id, tenant)
        for _ in range(5):  # the job moved on (handed on, released) since read: read it again
            if await fcall(self.client, self._cancel_call(record)) != "moved":
                break
            record = await self.get(job_id, tenant)
        return await self.get(job_id, tenant)

    def _cancel_call(self, record: JobRecord) -> Cancel:
        """The cancel of ``record`` as read: ``queue`` is where it waits (a preprocess stream,
        or its model queue's waiting set) or its stream once delivered."""
        partition = keys.partition_of(record.id)
        usage, usage_total = usage_keys(partition, time.time(), self.settings)
        return Cancel(
            job=keys.job(record.id),
            events=keys.events(record.id),
            queue=record.stream or keys.waiting(record.model, partition, record.job_class, 0),
            units=keys.units(record.model, partition),
            channel=keys.events_channel(partition),
            cancel_channel=keys.cancel_channel(partition),
            fair=keys.fair(record.model, partition),
            active=keys.active(record.model, partition, record.job_class),
            order=keys.arrivals(record.model, partition, record.job_class, record.band),
            job_id=record.id,
            now=time.time(),
            ttl=self.settings.result_ttl_s,
            usage=usage,
            usage_total=usage_total,
            usage_ttl=self.settings.usage_ttl_s,
        )

    async def events(self, job_id: str, after: str = "0-0", count: int = 1000) -> list[JobEvent]:
        """Events strictly after stream id ``after``."""
        with translated("cannot read the job's events"):
            rows: list[Any] = await self.client.xrange(
                keys.events(job_id), min=f"({after}" if after != "0-0" else "-", count=count
            )
        return [JobEvent(id=eid, type=f.get("type", ""), data=f.get("data", "")) for eid, f in rows]


def _as_inferq(exc: BaseException) -> Exception:
    """A reply's error as inferq's own (a pipeline hands redis-py's back unraised)."""
    if isinstance(exc, ServerError):
        return exc
    return ServerError(f"the queue server failed: {exc}")
