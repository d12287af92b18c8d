"""Turn a chunk of a batch's input lines into queued jobs of the batch class."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import anyio
from pydantic import ValidationError

from oaiproto.batch import CHAT_URL, InputLine, invalid_body, response_line
from oaiproto.errors import error_body
from oaiproto.requests import ChatCompletionRequest, CompletionRequest
from queueing import keys
from queueing.admission import Admission
from queueing.batch_record import Batch, Outcome
from queueing.batches import Batches
from queueing.errors import InferqError, InvalidRequest, QueueFull
from queueing.files import Files
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, SamplingParams
from queueing.settings import BatchSettings
from workers.batch.lines import RawLine, read_lines

DEFAULT_MAX_TOKENS = SamplingParams().max_tokens


def line_id(batch: Batch, number: int) -> str:
    """The ``id`` of a line in the output or error file."""
    return "batch_req_" + keys.line_job_id(batch.id, number, 1).rpartition("_")[2]


@dataclass
class Chunk:
    """Lines made ready to queue: jobs, and the outcomes of lines refused up front."""

    records: list[tuple[RawLine, JobRecord]]
    refused: list[tuple[RawLine, Outcome]]


class Expander:
    """Queues a batch's next lines: each line one job, its id fixed by the batch and line."""

    def __init__(
        self,
        admission: Admission,
        store: JobStore,
        batches: Batches,
        files: Files,
        settings: BatchSettings,
    ) -> None:
        self.admission = admission
        self.store = store
        self.batches = batches
        self.files = files
        self.settings = settings

    async def expand(self, batch: Batch, room: int) -> int:
        """Queue up to ``room`` more lines (a chunk at most); returns how many were taken on.

        Progress (lines and bytes read) is saved after the chunk is queued, so a crash in
        between queues the same jobs again, which is a no-op for each.
        """
        lines = await self._next_lines(batch, min(room, self.settings.chunk_lines))
        if not lines:
            return 0
        done = await self.batches.written(batch.id, lines[0].number, lines[-1].number + 1)
        chunk = await anyio.to_thread.run_sync(
            self._prepare, batch, [r for r in lines if r.number not in done]
        )
        accepted = await self.store.enqueue_many([record for _, record in chunk.records])
        stop = next(
            (
                raw
                for (raw, _), reply in zip(chunk.records, accepted, strict=True)
                if isinstance(reply, QueueFull)
            ),
            None,
        )
        taken = [raw for raw in lines if stop is None or raw.number < stop.number]
        outcomes = [
            outcome for raw, outcome in chunk.refused if stop is None or raw.number < stop.number
        ]
        if outcomes:
            await self.batches.record(batch.id, outcomes)
        if taken:
            await self.batches.update(batch.id, expanded=taken[-1].number + 1, offset=taken[-1].end)
        return len(taken)

    async def _next_lines(self, batch: Batch, count: int) -> list[RawLine]:
        file = await self.files.get(batch.tenant, batch.input_file_id)
        lines: list[RawLine] = []
        chunks = self.files.content(file, batch.offset)
        reader = read_lines(
            chunks,
            start=batch.offset,
            first_number=batch.expanded,
            max_bytes=self.settings.max_line_bytes,
        )
        async with contextlib.aclosing(reader):
            async for raw in reader:
                if raw.number >= batch.total or len(lines) >= count:
                    break
                lines.append(raw)
        return lines

    def _prepare(self, batch: Batch, lines: list[RawLine]) -> Chunk:
        chunk = Chunk([], [])
        for raw in lines:
            line = InputLine.model_validate(json.loads(raw.data or b""))
            try:
                chunk.records.append((raw, self._admit(batch, raw.number, line)))
            except ValidationError as exc:
                body = invalid_body(exc)
                chunk.refused.append((raw, self._refusal(batch, raw, line, 400, body)))
            except InferqError as exc:
                body = error_body(exc.message, exc.kind, exc.code, exc.param)
                chunk.refused.append((raw, self._refusal(batch, raw, line, exc.status, body)))
        return chunk

    def _refusal(
        self, batch: Batch, raw: RawLine, line: InputLine, status: int, body: dict[str, object]
    ) -> Outcome:
        text = response_line(line_id(batch, raw.number), line.custom_id, "", status, body)
        return Outcome(raw.number, "err", text)

    def _admit(self, batch: Batch, number: int, line: InputLine) -> JobRecord:
        chat = batch.endpoint == CHAT_URL
        request = (ChatCompletionRequest if chat else CompletionRequest).model_validate(line.body)
        if request.stream:
            raise InvalidRequest("stream: requests in a batch are not streamed", param="stream")
        request.check_fields()
        try:
            json.dumps(line.body, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            message = "text must be valid Unicode; lone surrogates such as \\ud800 are not allowed"
            raise InvalidRequest(message, param="body") from None
        job_id = batch.job_id(number)
        record = self.admission.admit(
            tenant=batch.tenant,
            partition=keys.partition_of(job_id),
            model=request.model,
            prompt=request.prompt if isinstance(request, CompletionRequest) else None,
            messages=request.messages if isinstance(request, ChatCompletionRequest) else None,
            params=request.sampling(DEFAULT_MAX_TOKENS),
            job_class=JobClass.BATCH,
            metadata={**request.metadata, "batch": batch.id, "custom_id": line.custom_id},
            stream_tokens=False,
            tools=request.tool_dicts if isinstance(request, ChatCompletionRequest) else None,
        )
        return record.model_copy(update={"id": job_id})
