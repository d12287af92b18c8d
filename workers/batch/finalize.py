"""End a batch: the lines that never ran, the output and error files, the final status."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator

from oaiproto.batch import unrun_line
from queueing.batch_record import Batch, BatchStatus, Outcome, OutcomeKind, Stop
from queueing.batches import Batches
from queueing.files import Files
from queueing.settings import BatchSettings, QueueSettings
from workers.batch.collect import UNRUN
from workers.batch.expand import line_id
from workers.batch.lines import read_lines

# How a batch ends: the statuses it may end from, its last status, and that one's timestamp.
_ENDS = {
    Stop.NONE: ({BatchStatus.FINALIZING}, BatchStatus.COMPLETED, "completed_at"),
    Stop.CANCELLED: ({BatchStatus.CANCELLING}, BatchStatus.CANCELLED, "cancelled_at"),
    Stop.EXPIRED: (
        {BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS},
        BatchStatus.EXPIRED,
        "expired_at",
    ),
}
_UNRUN_CHUNK = 1_000
log = logging.getLogger(__name__)


def result_file_id(batch_id: str, kind: OutcomeKind) -> str:
    """The id of a batch's output or error file: fixed, so writing it again replaces it."""
    return "file-" + hashlib.sha256(f"{batch_id}:{kind}".encode()).hexdigest()[:24]


class Finalizer:
    """Writes the result files from the recorded lines and gives the batch its last status.

    Each step can run again after a crash: lines are recorded once, files are replaced
    whole, and the status moves only from the state before it.
    """

    def __init__(
        self, files: Files, batches: Batches, settings: BatchSettings, queue: QueueSettings
    ) -> None:
        self.files = files
        self.batches = batches
        self.settings = settings
        self.queue = queue

    async def finish(self, batch: Batch) -> None:
        """Record unrun lines (a stopped batch), write the files, set the final status."""
        if batch.stop is not Stop.NONE:
            await self._record_unrun(batch)
            batch = await self.batches.get(batch.id)
        written: dict[str, str] = {}
        parts: list[tuple[OutcomeKind, int, str]] = [
            ("out", batch.completed, "output_file_id"),
            ("err", batch.failed, "error_file_id"),
        ]
        for kind, count, field in parts:
            if count:
                file = await self.files.create(
                    batch.tenant,
                    "batch_output",
                    f"{batch.id}_{'output' if kind == 'out' else 'error'}.jsonl",
                    self._bytes(batch.id, kind),
                    file_id=result_file_id(batch.id, kind),
                )
                written[field] = file.id
        allowed, after, stamp = _ENDS[batch.stop]
        await self.batches.move(batch.id, allowed, after, **{stamp: int(time.time())}, **written)
        log.info(
            "batch %s: %s, %d completed, %d failed", batch.id, after, batch.completed, batch.failed
        )
        await self.batches.retire(batch.id, self.queue.result_ttl_s)

    async def _bytes(self, batch_id: str, kind: OutcomeKind) -> AsyncIterator[bytes]:
        lines: list[str] = []
        async for line in self.batches.lines(batch_id, kind):
            lines.append(line)
            if len(lines) >= _UNRUN_CHUNK:
                yield ("\n".join(lines) + "\n").encode()
                lines.clear()
        if lines:
            yield ("\n".join(lines) + "\n").encode()

    async def _record_unrun(self, batch: Batch) -> None:
        """Lines never queued go to the error file, each with the reason the batch stopped."""
        if batch.expanded >= batch.total:
            return
        code, message = UNRUN[batch.stop]
        file = await self.files.get(batch.tenant, batch.input_file_id)
        reader = read_lines(
            self.files.content(file, batch.offset),
            start=batch.offset,
            first_number=batch.expanded,
            max_bytes=self.settings.max_line_bytes,
        )
        chunk: list[Outcome] = []
        async with contextlib.aclosing(reader):
            async for raw in reader:
                if raw.number >= batch.total:
                    break
                custom_id = json.loads(raw.data or b"{}").get("custom_id", "")
                text = unrun_line(line_id(batch, raw.number), custom_id, code, message)
                chunk.append(Outcome(raw.number, "err", text))
                if len(chunk) >= _UNRUN_CHUNK:
                    await self.batches.record(batch.id, chunk)
                    chunk = []
        if chunk:
            await self.batches.record(batch.id, chunk)
