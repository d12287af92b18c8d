"""The API's side of the queue: enqueue, look up, cancel, and read a job's events."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.errors import JobNotFound, QueueFull
from queueing.events import JobEvent
from queueing.schemas import JobRecord
from queueing.settings import QueueSettings


class JobStore:
    """Durable enqueue (one round trip, fsynced before it returns) and job reads."""

    def __init__(self, client: aioredis.Redis, settings: QueueSettings) -> None:
        self.client = client
        self.settings = settings
        self.wait_aof = False
        self._shares: dict[tuple[str, str], tuple[float, float | None]] = {}

    async def output_share(self, model: str, tenant: str) -> float | None:
        """The tenant's recent share of ``max_tokens`` used on ``model`` (cached briefly)."""
        now = time.monotonic()
        cached = self._shares.get((model, tenant))
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = await self.client.hget(keys.output_shares(model), tenant)
        share = float(raw) if raw is not None else None
        self._shares[(model, tenant)] = (now + self.settings.output_share_cache_s, share)
        return share

    async def check_durability(self) -> bool:
        """Use ``WAITAOF`` on the acknowledged path where the server supports it."""
        try:
            await self.client.execute_command("WAITAOF", 1, 0, 0)
        except ResponseError:
            self.wait_aof = False
        else:
            self.wait_aof = True
        return self.wait_aof

    async def enqueue(self, record: JobRecord, *, idempotency_key: str | None = None) -> str:
        """Store and queue ``record`` atomically; returns its id (an earlier one on replay)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.fcall("iq_enqueue", *self._enqueue_args(record, idempotency_key))
            if self.wait_aof:
                pipe.execute_command("WAITAOF", 1, 0, 0)
            replies = await pipe.execute()
        accepted = self._accepted(record, replies[0])
        if isinstance(accepted, QueueFull):
            raise accepted
        return accepted

    async def enqueue_many(
        self, records: Sequence[JobRecord], idempotency_keys: Sequence[str | None] = ()
    ) -> list[str | QueueFull]:
        """Store and queue many jobs in one round trip (and one ``WAITAOF``), each atomically.

        Returns, per record, its id (an earlier one on replay) or the :class:`QueueFull` that
        :meth:`enqueue` would have raised for it.
        """
        if not records:
            return []
        idem = list(idempotency_keys) or [None] * len(records)
        async with self.client.pipeline(transaction=False) as pipe:
            for record, key in zip(records, idem, strict=True):
                pipe.fcall("iq_enqueue", *self._enqueue_args(record, key))
            if self.wait_aof:
                pipe.execute_command("WAITAOF", 1, 0, 0)
            replies = await pipe.execute()
        return [self._accepted(r, reply) for r, reply in zip(records, replies, strict=False)]

    def _enqueue_args(self, record: JobRecord, idempotency_key: str | None) -> list[str | int]:
        idem = keys.idempotency(record.tenant, idempotency_key) if idempotency_key else ""
        return [
            6,
            keys.job(record.id),
            keys.events(record.id),
            keys.queue(record.model, record.job_class, record.band),
            keys.units(record.model),
            keys.wake(record.model),
            idem,
            record.id,
            str(record.estimated_units),
            keys.queue_field(record.job_class, record.band),
            str(self.settings.max_queued_units),
            str(self.settings.result_ttl_s),
            str(time.time()),
            keys.EVENTS_CHANNEL,
            *(item for pair in record.to_hash().items() for item in pair),
        ]

    def _accepted(self, record: JobRecord, reply: Any) -> str | QueueFull:
        code, value = reply
        if int(code) < 0:
            return QueueFull(
                f"model '{record.model}' has {float(value):.1f} units queued, past its ceiling "
                f"of {self.settings.max_queued_units:g}; retry later",
                retry_after_s=self.settings.retry_after_s,
            )
        return str(value)

    async def get(self, job_id: str, tenant: str) -> JobRecord:
        """The job, if it exists and belongs to ``tenant``."""
        raw = await self.client.hgetall(keys.job(job_id))
        if not raw or raw.get("tenant") != tenant:
            raise JobNotFound(f"No job with id '{job_id}'", param="id")
        return JobRecord.from_hash(raw)

    async def cancel(self, job_id: str, tenant: str) -> JobRecord:
        """Cancel: a queued job is removed at once; a running one is aborted by its worker."""
        record = await self.get(job_id, tenant)
        await self.client.fcall(
            "iq_cancel",
            4,
            keys.job(job_id),
            keys.events(job_id),
            record.stream or "",
            keys.units(record.model),
            job_id,
            str(time.time()),
            str(self.settings.result_ttl_s),
            keys.EVENTS_CHANNEL,
            keys.CANCEL_CHANNEL,
        )
        return await self.get(job_id, tenant)

    async def events(self, job_id: str, after: str = "0-0", count: int = 1000) -> list[JobEvent]:
        """Events strictly after stream id ``after``."""
        rows: list[Any] = await self.client.xrange(
            keys.events(job_id), min=f"({after}" if after != "0-0" else "-", count=count
        )
        return [JobEvent(id=eid, type=f.get("type", ""), data=f.get("data", "")) for eid, f in rows]

    async def unit_counters(self, spec: ModelSpec) -> dict[str, float]:
        """The model's unit counters (queued, inflight, per queue, arrivals...)."""
        raw = await self.client.hgetall(keys.units(spec.name))
        return {name: round(float(value), 4) for name, value in raw.items()}
