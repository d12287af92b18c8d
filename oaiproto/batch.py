"""The OpenAI Batch API's shapes: the create request, input and output lines, the batch object."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from oaiproto.errors import error_body
from queueing.batch_record import Batch

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
Endpoint = Literal["/v1/chat/completions", "/v1/completions"]
_MetaKey = Annotated[str, StringConstraints(max_length=64)]
_MetaValue = Annotated[str, StringConstraints(max_length=512)]


class BatchCreate(BaseModel):
    """Body of ``POST /v1/batches``."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: Annotated[str, Field(min_length=1)]
    endpoint: Endpoint
    completion_window: Literal["24h"]
    metadata: Annotated[dict[_MetaKey, _MetaValue], Field(max_length=16)] | None = None


class InputLine(BaseModel):
    """One line of a batch's input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: Annotated[str, Field(min_length=1, max_length=512)]
    method: Literal["POST"]
    url: str
    body: dict[str, Any]


def _line(line_id: str, custom_id: str, response: dict[str, Any] | None, error: Any) -> str:
    body = {"id": line_id, "custom_id": custom_id, "response": response, "error": error}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def response_line(
    line_id: str, custom_id: str, request_id: str, status_code: int, body: dict[str, Any]
) -> str:
    """An output (or error) file line for a request that got an answer: a body or an error."""
    response = {"status_code": status_code, "request_id": request_id, "body": body}
    return _line(line_id, custom_id, response, None)


def unrun_line(line_id: str, custom_id: str, code: str, message: str) -> str:
    """An error file line for a request that never ran (the batch expired or was cancelled)."""
    return _line(line_id, custom_id, None, {"code": code, "message": message})


def line_error(
    code: str, message: str, line: int | None, param: str | None = None
) -> dict[str, Any]:
    """One entry of a failed batch's ``errors`` (``line`` counts from 1)."""
    return {"code": code, "message": message, "param": param, "line": line}


def batch_object(batch: Batch) -> dict[str, Any]:
    """The batch as the OpenAI API shows it."""
    errors = {"object": "list", "data": batch.errors} if batch.errors else None
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "model": batch.model or None,
        "errors": errors,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status.value,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": batch.created_at,
        "in_progress_at": batch.in_progress_at,
        "expires_at": batch.expires_at,
        "finalizing_at": batch.finalizing_at,
        "completed_at": batch.completed_at,
        "failed_at": batch.failed_at,
        "expired_at": batch.expired_at,
        "cancelling_at": batch.cancelling_at,
        "cancelled_at": batch.cancelled_at,
        "request_counts": {
            "total": batch.total,
            "completed": batch.completed,
            "failed": batch.failed,
        },
        "metadata": batch.metadata,
        "usage": {
            "input_tokens": batch.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": batch.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": batch.input_tokens + batch.output_tokens,
        },
    }


def invalid_body(exc: ValidationError) -> dict[str, Any]:
    """The error body for a request line whose body does not validate."""
    parts = []
    for problem in exc.errors():
        where = ".".join(str(p) for p in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        parts.append(f"body.{where}: {message}" if where else f"body: {message}")
    first = exc.errors()[0]["loc"] if exc.errors() else ()
    param = ".".join(str(p) for p in first) or None
    return error_body("; ".join(parts), "invalid_request_error", "invalid_request", param)
