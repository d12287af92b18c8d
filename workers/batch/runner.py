"""Advance a batch through its statuses, one lease-holding arq job at a time."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from queueing.admission import Admission
from queueing.batch_record import Batch, BatchStatus, Stop
from queueing.batches import Batches
from queueing.errors import BatchNotFound, InferqError
from queueing.settings import BatchSettings, QueueSettings
from workers.batch.collect import Collector
from workers.batch.expand import Expander
from workers.batch.finalize import Finalizer
from workers.batch.validate import Validator

log = logging.getLogger(__name__)

_STOPPABLE = {BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS}


class BatchRunner:
    """Moves one batch on: validate, expand while lines finish, collect, finalise.

    Whoever advances a batch holds its lease, so two arq workers never do; a crashed one's
    lease lapses and the sweep hands the batch to another. Every step records its progress
    before the next one, and repeating any step does nothing twice.
    """

    def __init__(
        self,
        batches: Batches,
        admission: Admission,
        validator: Validator,
        expander: Expander,
        collector: Collector,
        finalizer: Finalizer,
        settings: BatchSettings,
        queue: QueueSettings,
    ) -> None:
        self.batches = batches
        self.admission = admission
        self.validator = validator
        self.expander = expander
        self.collector = collector
        self.finalizer = finalizer
        self.settings = settings
        self.queue = queue

    async def advance(self, batch_id: str) -> None:
        """Work on the batch for up to ``slice_s`` (or until it ends), if nobody else is."""
        token = secrets.token_hex(8)
        lease_ms = self.settings.lease_ms
        if not await self.batches.lease(batch_id, token, lease_ms):
            return
        try:
            await self.batches.launched(batch_id)
            until = time.monotonic() + self.settings.slice_s
            while time.monotonic() < until:
                try:
                    batch = await self.batches.get(batch_id)
                except BatchNotFound:
                    await self.batches.retire(batch_id, self.queue.result_ttl_s)
                    return
                if batch.status.terminal:
                    await self.batches.retire(batch_id, self.queue.result_ttl_s)
                    return
                busy = await self.step(batch)
                if not await self.batches.lease(batch_id, token, lease_ms):
                    log.warning("batch %s: lease lost; another worker has it", batch_id)
                    return
                if not busy:
                    await asyncio.sleep(self.settings.poll_s)
        finally:
            await self.batches.lease(batch_id, token, 0)

    async def step(self, batch: Batch) -> bool:
        """One step; True if it made progress (so the next need not wait)."""
        if (
            batch.stop is Stop.NONE
            and batch.status in _STOPPABLE
            and time.time() >= batch.expires_at
        ):
            await self.batches.update(batch.id, stop=Stop.EXPIRED.value)
            batch.stop = Stop.EXPIRED
        if batch.status is BatchStatus.VALIDATING and batch.stop is Stop.NONE:
            await self._validate(batch)
            return True
        # total is 0 only for a batch stopped before its validation finished.
        if batch.status is BatchStatus.FINALIZING or batch.total == 0:
            await self.finalizer.finish(batch)
            return True
        return await self._run(batch)

    async def _validate(self, batch: Batch) -> None:
        verdict = await self.validator.check(batch)
        now = int(time.time())
        if not verdict.errors and verdict.model is not None:
            try:
                spec = self.admission.spec(verdict.model)
            except InferqError as exc:
                verdict.errors.append(
                    {"code": exc.code, "message": exc.message, "param": "body.model", "line": None}
                )
            else:
                partitions = self.queue.partitions_of(spec.name)
                await self.batches.update(
                    batch.id, total=verdict.total, model=spec.name, partitions=partitions
                )
        if verdict.errors:
            log.info("batch %s: failed validation (%d errors)", batch.id, len(verdict.errors))
            await self.batches.move(
                batch.id,
                {BatchStatus.VALIDATING},
                BatchStatus.FAILED,
                failed_at=now,
                errors=verdict.errors,
            )
            return
        log.info("batch %s: %d requests for %s", batch.id, verdict.total, verdict.model)
        await self.batches.move(
            batch.id, {BatchStatus.VALIDATING}, BatchStatus.IN_PROGRESS, in_progress_at=now
        )

    async def _run(self, batch: Batch) -> bool:
        """Collect finished lines; queue more while there is room; stop or finalise."""
        collected, running = await self.collector.collect(batch)
        if batch.stop is not Stop.NONE:
            await self.collector.cancel(batch, running)
            if not running:
                await self.finalizer.finish(batch)
            return collected > 0
        expanded = 0
        room = self.settings.max_outstanding - len(running)
        if batch.expanded < batch.total and room > 0:
            expanded = await self.expander.expand(batch, room)
        elif batch.expanded >= batch.total and not running:
            now = int(time.time())
            await self.batches.move(
                batch.id, {BatchStatus.IN_PROGRESS}, BatchStatus.FINALIZING, finalizing_at=now
            )
            return True
        return collected > 0 or expanded > 0
