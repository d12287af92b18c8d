"""A job's events as an OpenAI stream: data-only chunks, a finish, usage, then ``[DONE]``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from oaiproto.errors import error_body
from oaiproto.format import DONE, Head, Kind, chunk, failure, sse, usage_chunk, usage_of
from queueing.errors import ServerError
from queueing.events import EventType, JobEvent
from queueing.schemas import JobRecord, JobResult, JobStatus, TokenLogprob


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


class LogprobCursor:
    """The log probabilities sent so far; a restarted job replays them, only new ones go out.

    :class:`StreamText` has checked that the replayed text is the same, so its tokens are too.
    """

    def __init__(self) -> None:
        self.sent = 0
        self._seen = 0

    def restart(self) -> None:
        """A new attempt began: its tokens count again from the first."""
        self._seen = 0

    def add(self, entries: list[TokenLogprob]) -> list[TokenLogprob]:
        """The entries of ``entries`` the client has not had yet."""
        new = entries[max(0, self.sent - self._seen) :]
        self._seen += len(entries)
        self.sent += len(new)
        return new


@dataclass
class Piece:
    """What one event adds to the client's output."""

    text: str = ""
    logprobs: list[TokenLogprob] | None = None
    result: JobResult | None = None  # buffered: the whole answer

    def __bool__(self) -> bool:
        return bool(self.text or self.logprobs or self.result)


class Progress:
    """What a client has been sent of its job: text and log probabilities, the last status,
    the finish reason.

    ``buffered``: token events are skipped and the result comes whole (with its tool calls
    and log probabilities) in one piece.
    """

    def __init__(self, *, buffered: bool = False) -> None:
        self.text = StreamText()
        self.logprobs = LogprobCursor()
        self.status = ""
        self.finish_reason = "stop"
        self.buffered = buffered

    def piece(self, event: JobEvent) -> Piece:
        """What ``event`` adds to the client's output (often nothing); raises :class:`Diverged`."""
        if event.type == EventType.TOKENS and not self.buffered:
            data = json.loads(event.data)
            entries = [TokenLogprob.model_validate(e) for e in data.get("logprobs", ())]
            return Piece(self.text.add(data["text"]), self.logprobs.add(entries) or None)
        if event.type == EventType.RESULT:
            result = JobResult.model_validate_json(event.data)
            self.finish_reason = result.finish_reason or "stop"
            if self.buffered:
                return Piece(result.text, result=result)
            text = self.text.finish(result.text)
            rest = result.logprobs[self.logprobs.sent :] if result.logprobs else None
            self.logprobs.sent += len(rest or ())
            return Piece(text, rest or None)
        if event.type == EventType.STATUS:
            self.status = json.loads(event.data)["status"]
            if self.status == JobStatus.RUNNING:
                self.text.restart()
                self.logprobs.restart()
        return Piece()


async def openai_chunks(
    events: AsyncIterator[JobEvent],
    latest: Callable[[], Awaitable[JobRecord]],
    head: Head,
    *,
    include_usage: bool,
    buffered: bool = False,
) -> AsyncIterator[bytes]:
    """A job's events as OpenAI stream chunks, ending with ``[DONE]``.

    ``latest`` reads the finished job (usage, error); ``buffered`` as in :class:`Progress`.
    """
    if head.kind is Kind.CHAT:
        yield sse(chunk(head, role=True, usage_field=include_usage))
    progress = Progress(buffered=buffered)
    offset = 0
    try:
        async for event in events:
            if piece := progress.piece(event):
                result = piece.result or JobResult(text=piece.text, logprobs=piece.logprobs)
                yield sse(
                    chunk(
                        head,
                        text=piece.text,
                        usage_field=include_usage,
                        result=result,
                        offset=offset,
                    )
                )
                offset += len(piece.text)
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
                yield sse(usage_chunk(head, usage_of(await latest())))
        else:
            yield sse(failure(await latest())[1])
    yield DONE
