"""OpenAI's response shapes: completions, stream chunks, model cards, and job failures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from oaiproto.errors import error_body
from oaiproto.logprobs import chat_logprobs, completion_logprobs
from queueing.catalogue import ModelSpec
from queueing.errors import InvalidImage
from queueing.schemas import JobRecord, JobResult, JobStatus, Usage

OWNER = "inferq"
DONE = b"data: [DONE]\n\n"


class Kind(StrEnum):
    """Which OpenAI endpoint a response belongs to."""

    CHAT = "chat"
    TEXT = "text"


@dataclass(frozen=True)
class Head:
    """The fields every body and chunk of one response repeats."""

    kind: Kind
    id: str
    created: int
    model: str

    @classmethod
    def of(cls, kind: Kind, record: JobRecord) -> Head:
        """The response to ``record``; its id is the job's, so the job can be looked up."""
        prefix = "chatcmpl-" if kind is Kind.CHAT else "cmpl-"
        return cls(
            kind, prefix + record.id.removeprefix("job_"), int(record.created_at), record.model
        )

    def body(self, obj: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """A response object with these choices."""
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }


def usage_of(record: JobRecord) -> Usage:
    """The job's token usage (the prompt alone if the worker reported none)."""
    return record.usage or Usage(
        prompt_tokens=record.prompt_tokens, total_tokens=record.prompt_tokens
    )


def _tool_calls(result: JobResult, *, indexed: bool) -> list[dict[str, Any]]:
    calls = [call.model_dump() for call in result.tool_calls or []]
    return [{"index": i, **call} for i, call in enumerate(calls)] if indexed else calls


def _logprobs(head: Head, result: JobResult, offset: int = 0) -> dict[str, Any] | None:
    if head.kind is Kind.CHAT:
        return chat_logprobs(result.logprobs)
    return completion_logprobs(result.logprobs, offset)


def completion(head: Head, record: JobRecord) -> dict[str, Any]:
    """The non-streaming answer for a succeeded job."""
    result = record.result or JobResult(text="")
    choice: dict[str, Any] = {"index": 0}
    if head.kind is Kind.CHAT:
        obj = "chat.completion"
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if result.tool_calls:
            message["content"] = result.text or None
            message["tool_calls"] = _tool_calls(result, indexed=False)
        choice["message"] = message
    else:
        obj = "text_completion"
        choice["text"] = result.text
    choice |= {"logprobs": _logprobs(head, result), "finish_reason": result.finish_reason or "stop"}
    return head.body(obj, [choice], usage=usage_of(record).model_dump())


def chunk(
    head: Head,
    *,
    text: str = "",
    role: bool = False,
    finish_reason: str | None = None,
    usage_field: bool = False,
    result: JobResult | None = None,
    offset: int = 0,
) -> dict[str, Any]:
    """One streamed chunk; ``usage_field`` adds ``"usage": null`` as OpenAI does then.

    ``result``: this chunk's tool calls and log probabilities; ``offset``: where its text
    starts in the whole output (a completion's ``text_offset``).
    """
    choice: dict[str, Any] = {"index": 0}
    if head.kind is Kind.CHAT:
        obj = "chat.completion.chunk"
        if role:
            choice["delta"] = {"role": "assistant", "content": ""}
        else:
            choice["delta"] = {"content": text} if text else {}
        if result is not None and result.tool_calls:
            choice["delta"]["tool_calls"] = _tool_calls(result, indexed=True)
    else:
        obj = "text_completion"
        choice["text"] = text
    logprobs = _logprobs(head, result, offset) if result is not None else None
    choice |= {"logprobs": logprobs, "finish_reason": finish_reason}
    extra = {"usage": None} if usage_field else {}
    return head.body(obj, [choice], **extra)


def usage_chunk(head: Head, usage: Usage) -> dict[str, Any]:
    """The last chunk when ``stream_options.include_usage`` is set: no choices, the usage."""
    obj = "chat.completion.chunk" if head.kind is Kind.CHAT else "text_completion"
    return head.body(obj, [], usage=usage.model_dump())


def sse(data: dict[str, Any]) -> bytes:
    """One data-only server-sent event, framed as OpenAI frames it."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def failure(record: JobRecord) -> tuple[int, dict[str, Any]]:
    """The HTTP status and error body for a job that ended without success."""
    reason = record.error or f"the job ended with status '{record.status.value}'"
    if record.status is JobStatus.CANCELLED:
        message = f"Job {record.id} was cancelled: {reason}"
        return 409, error_body(message, "invalid_request_error", "job_cancelled", None)
    message = f"Job {record.id} failed: {reason}"
    if record.error_code == InvalidImage.code:  # found bad by the preprocess tier
        return 400, error_body(message, InvalidImage.kind, InvalidImage.code, None)
    return 500, error_body(message, "server_error", "job_failed", None)


def model_card(spec: ModelSpec) -> dict[str, Any]:
    """A model as ``/v1/models`` lists it; ``created`` is when its folder was prepared."""
    try:
        created = int(spec.path.stat().st_mtime)
    except OSError:
        created = 0
    return {"id": spec.name, "object": "model", "created": created, "owned_by": OWNER}
