"""A job's events as an OpenAI stream: data-only chunks, a finish, usage, then ``[DONE]``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from prometheus_client import Gauge

from api.errors import error_body
from api.openai_format import DONE, Head, Kind, chunk, failure, sse, usage_chunk, usage_of
from api.openai_jobs import JobWatch
from queueing.errors import ServerError
from queueing.events import EventType, JobEvent
from queueing.schemas import JobResult, JobStatus


class Diverged(Exception):
    """A restarted job produced output that differs from what the client already has."""


class StreamText:
    """The text sent so far; a job restarted elsewhere replays it, and only new text goes out."""

    def __init__(self) -> None:
        self.sent = ""
        self._replay: str | None = None

    def restart(self) -> None:
        """A new attempt began: its output starts again from the beginning."""
        if self.sent:
            self._replay = ""

    def add(self, text: str) -> str:
        """The part of ``text`` the client has not seen yet; raises :class:`Diverged`."""
        if self._replay is None:
            self.sent += text
            return text
        self._replay += text
        if len(self._replay) <= len(self.sent):
            if not self.sent.startswith(self._replay):
                raise Diverged
            return ""
        if not self._replay.startswith(self.sent):
            raise Diverged
        new = self._replay[len(self.sent) :]
        self.sent, self._replay = self._replay, None
        return new

    def finish(self, text: str) -> str:
        """What of the final ``text`` the token events did not carry; raises :class:`Diverged`."""
        self._replay = None
        if not text.startswith(self.sent):
            raise Diverged
        return self.add(text[len(self.sent) :])


class Progress:
    """What a client has been sent of its job: text, the last status, the finish reason."""

    def __init__(self) -> None:
        self.text = StreamText()
        self.status = ""
        self.finish_reason = "stop"

    def new_text(self, event: JobEvent) -> str:
        """What ``event`` adds to the client's output (often nothing); raises :class:`Diverged`."""
        if event.type == EventType.TOKENS:
            return self.text.add(json.loads(event.data)["text"])
        if event.type == EventType.RESULT:
            result = JobResult.model_validate_json(event.data)
            self.finish_reason = result.finish_reason or "stop"
            return self.text.finish(result.text)
        if event.type == EventType.STATUS:
            self.status = json.loads(event.data)["status"]
            if self.status == JobStatus.RUNNING:
                self.text.restart()
        return ""


async def openai_chunks(
    watch: JobWatch, head: Head, *, include_usage: bool, clients: Gauge
) -> AsyncIterator[bytes]:
    """The job's output as OpenAI stream chunks; a client that leaves early cancels the job."""
    clients.inc()
    try:
        if head.kind is Kind.CHAT:
            yield sse(chunk(head, role=True, usage_field=include_usage))
        progress = Progress()
        try:
            async with contextlib.aclosing(watch.events()) as events:
                async for event in events:
                    if piece := progress.new_text(event):
                        yield sse(chunk(head, text=piece, usage_field=include_usage))
        except Diverged:
            message = "the job was restarted after a worker failure and its output changed; retry"
            yield sse(error_body(message, "server_error", "job_restarted", None))
        except ServerError:
            message = "the queue server is unavailable; retry later"
            yield sse(error_body(message, "server_error", "queue_unavailable", None))
        else:
            if progress.status == JobStatus.SUCCEEDED:
                final = chunk(head, finish_reason=progress.finish_reason, usage_field=include_usage)
                yield sse(final)
                if include_usage:
                    yield sse(usage_chunk(head, usage_of(await watch.latest())))
            else:
                yield sse(failure(await watch.latest())[1])
        yield DONE
    finally:
        clients.dec()
        await watch.abandon()
