"""Check a batch's input file before anything runs: OpenAI refuses a malformed file whole."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from oaiproto.batch import InputLine, line_error
from queueing.batch_record import Batch
from queueing.batches import Batches
from queueing.files import Files
from queueing.settings import BatchSettings
from workers.batch.lines import RawLine, read_lines

_CHUNK = 1_000  # custom ids checked per round trip


@dataclass(frozen=True)
class Problem:
    """What is wrong with one line."""

    code: str
    message: str
    param: str | None = None


@dataclass
class Verdict:
    """What validation found: the requests' count and model, or the errors (line numbers)."""

    total: int = 0
    model: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    blank_at: int | None = None  # the first blank line not yet known to be trailing


class Validator:
    """Reads the input file once, streamed, and lists what is wrong with it."""

    def __init__(self, files: Files, batches: Batches, settings: BatchSettings) -> None:
        self.files = files
        self.batches = batches
        self.settings = settings

    async def check(self, batch: Batch) -> Verdict:
        """The verdict on ``batch``'s input file (at most ``max_reported_errors`` errors)."""
        verdict = Verdict()
        await self.batches.forget_custom_ids(batch.id)
        file = await self.files.get(batch.tenant, batch.input_file_id)
        pending: list[tuple[int, str]] = []
        chunks = self.files.content(file)
        async for raw in read_lines(
            chunks, start=0, first_number=0, max_bytes=self.settings.max_line_bytes
        ):
            if raw.blank:
                verdict.blank_at = raw.number if verdict.blank_at is None else verdict.blank_at
                continue
            if verdict.blank_at is not None:
                self._error(verdict, "empty_line", "the line is empty", verdict.blank_at)
                verdict.blank_at = None
            verdict.total = raw.number + 1
            custom_id = self._check_line(batch, raw, verdict)
            if custom_id is not None:
                pending.append((raw.number, custom_id))
            if len(pending) >= _CHUNK:
                await self._check_unique(batch, pending, verdict)
            if len(verdict.errors) >= self.settings.max_reported_errors:
                return verdict
        await self._check_unique(batch, pending, verdict)
        if verdict.total == 0:
            self._error(verdict, "empty_file", "the input file has no requests", None)
        elif verdict.total > self.settings.max_lines:
            message = (
                f"the file has {verdict.total} requests; the limit is {self.settings.max_lines}"
            )
            self._error(verdict, "too_many_requests", message, None)
        return verdict

    def _check_line(self, batch: Batch, raw: RawLine, verdict: Verdict) -> str | None:
        """The line's custom_id if it is a valid request line; else record why not."""
        found = self._parse(batch, raw, verdict)
        if isinstance(found, Problem):
            self._error(verdict, found.code, found.message, raw.number, found.param)
            return None
        return found

    def _parse(self, batch: Batch, raw: RawLine, verdict: Verdict) -> str | Problem:
        if raw.data is None:
            limit = self.settings.max_line_bytes
            return Problem("line_too_long", f"the line is longer than the limit of {limit} bytes")
        try:
            parsed = json.loads(raw.data)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return Problem("invalid_json_line", "the line is not a JSON object")
        try:
            line = InputLine.model_validate(parsed)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or None
            return Problem("invalid_request", f"{where}: {problem['msg']}", where)
        if line.url != batch.endpoint:
            message = f"url '{line.url}' does not match the batch's endpoint '{batch.endpoint}'"
            return Problem("invalid_url", message, "url")
        model = line.body.get("model")
        if not isinstance(model, str) or not model:
            return Problem("invalid_request", "body.model: a model is required", "body.model")
        if verdict.model is None:
            verdict.model = model
        elif model != verdict.model:
            message = f"every request of a batch uses one model: '{model}' is not '{verdict.model}'"
            return Problem("mismatched_model", message, "body.model")
        return line.custom_id

    async def _check_unique(
        self, batch: Batch, pending: list[tuple[int, str]], verdict: Verdict
    ) -> None:
        fresh = await self.batches.claim_custom_ids(batch.id, [cid for _, cid in pending])
        for (number, custom_id), new in zip(pending, fresh, strict=True):
            if not new:
                message = f"custom_id '{custom_id}' is used by an earlier line"
                self._error(verdict, "duplicate_custom_id", message, number, "custom_id")
        pending.clear()

    def _error(
        self,
        verdict: Verdict,
        code: str,
        message: str,
        number: int | None,
        param: str | None = None,
    ) -> None:
        if len(verdict.errors) < self.settings.max_reported_errors:
            line = None if number is None else number + 1
            verdict.errors.append(line_error(code, message, line, param))
