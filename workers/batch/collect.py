"""Gather the outcomes of a batch's finished lines into its output and error lists."""

from __future__ import annotations

import time
from typing import Any

from oaiproto.batch import CHAT_URL, response_line, unrun_line
from oaiproto.format import Head, Kind, completion, failure
from queueing import keys
from queueing.batch_record import Batch, Outcome, Stop
from queueing.batches import Batches
from queueing.calls import Cancel
from queueing.connection import Client, fcall_many
from queueing.errors import translated
from queueing.keys import JobClass
from queueing.schemas import JobRecord, JobStatus
from queueing.settings import QueueSettings
from queueing.usage import usage_keys
from workers.batch.expand import line_id

_TERMINAL = {s.value for s in JobStatus if s.terminal}
UNRUN = {
    Stop.CANCELLED: ("batch_cancelled", "The batch was cancelled before this request finished."),
    Stop.EXPIRED: (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
}


class Collector:
    """Reads the jobs of a batch's outstanding lines; records the finished ones, once each."""

    def __init__(self, client: Client, batches: Batches, settings: QueueSettings) -> None:
        self.client = client
        self.batches = batches
        self.settings = settings

    async def collect(self, batch: Batch) -> tuple[int, list[tuple[int, list[Any]]]]:
        """Record every finished line; returns how many, and the lines still running
        (line, [status, stream, model, job_class, band] of its job)."""
        start, end = batch.low, batch.expanded
        done = await self.batches.written(batch.id, start, end)
        pending = [n for n in range(start, end) if n not in done]
        heads = await self._read(batch, pending, ("status", "stream", "model", "job_class", "band"))
        finished: list[int] = []
        running: list[tuple[int, list[Any]]] = []
        for n, head in zip(pending, heads, strict=True):
            if head[0] in _TERMINAL or head[0] is None:
                finished.append(n)
            else:
                running.append((n, head))
        records = await self._records(batch, finished)
        outcomes = [
            self._outcome(batch, n, record) for n, record in zip(finished, records, strict=True)
        ]
        if outcomes:
            await self.batches.record(batch.id, outcomes)
        low = running[0][0] if running else end
        if low != batch.low:
            await self.batches.update(batch.id, low=low)
            batch.low = low
        return len(outcomes), running

    async def cancel(self, batch: Batch, running: list[tuple[int, list[Any]]]) -> None:
        """Cancel the jobs of lines still queued or running (the batch stops)."""
        now = time.time()
        calls = []
        for number, (_, stream, model, job_class, band) in running:
            job_id = batch.job_id(number)
            partition = keys.partition_of(job_id)
            usage, usage_total = usage_keys(partition, now, self.settings)
            calls.append(
                Cancel(
                    job=keys.job(job_id),
                    events=keys.events(job_id),
                    queue=stream,
                    units=keys.units(model, partition),
                    channel=keys.events_channel(partition),
                    cancel_channel=keys.cancel_channel(partition),
                    fair=keys.fair(model, partition),
                    active=keys.active(model, partition, JobClass(job_class)),
                    order=keys.arrivals(model, partition, JobClass(job_class), int(band)),
                    job_id=job_id,
                    now=now,
                    ttl=self.settings.result_ttl_s,
                    usage=usage,
                    usage_total=usage_total,
                    usage_ttl=self.settings.usage_ttl_s,
                )
            )
        await fcall_many(self.client, calls)

    async def _read(
        self, batch: Batch, lines: list[int], fields: tuple[str, ...]
    ) -> list[list[Any]]:
        if not lines:
            return []
        with translated("cannot read the batch's jobs"):
            async with self.client.pipeline(transaction=False) as pipe:
                for number in lines:
                    pipe.hmget(keys.job(batch.job_id(number)), list(fields))
                return list(await pipe.execute())

    async def _records(self, batch: Batch, lines: list[int]) -> list[JobRecord | None]:
        if not lines:
            return []
        with translated("cannot read the batch's jobs"):
            async with self.client.pipeline(transaction=False) as pipe:
                for number in lines:
                    pipe.hgetall(keys.job(batch.job_id(number)))
                raws: list[dict[str, str]] = await pipe.execute()
        return [JobRecord.from_hash(raw) if raw else None for raw in raws]

    def _outcome(self, batch: Batch, number: int, record: JobRecord | None) -> Outcome:
        ident = line_id(batch, number)
        if record is None:
            message = "the request's job is gone (its record expired or was lost)"
            return Outcome(number, "err", unrun_line(ident, "", "job_lost", message))
        custom_id = record.metadata.get("custom_id", "")
        used = (
            (record.usage.prompt_tokens, record.usage.completion_tokens) if record.usage else (0, 0)
        )
        if record.status is JobStatus.SUCCEEDED:
            kind = Kind.CHAT if batch.endpoint == CHAT_URL else Kind.TEXT
            body = completion(Head.of(kind, record), record)
            text = response_line(ident, custom_id, record.id, 200, body)
            return Outcome(number, "out", text, *used)
        if record.status is JobStatus.CANCELLED and batch.stop is not Stop.NONE:
            code, message = UNRUN[batch.stop]
            return Outcome(number, "err", unrun_line(ident, custom_id, code, message), *used)
        status, body = failure(record)
        text = response_line(ident, custom_id, record.id, status, body)
        return Outcome(number, "err", text, *used)
