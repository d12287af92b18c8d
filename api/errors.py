"""Every error the API answers, as an OpenAI-shaped body: ``{"error": {...}}``."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from oaiproto.errors import error_body
from queueing.errors import InferqError, QueueFull, ServerError
from queueing.ratelimit import RateLimited

log = logging.getLogger(__name__)


class Unauthorized(InferqError):
    """No API key, or one that maps to no tenant."""

    status = 401
    code = "invalid_api_key"
    kind = "invalid_request_error"


class Forbidden(InferqError):
    """A known key that may not do this (a disabled tenant's, or not the admin key)."""

    status = 403
    code = "permission_denied"
    kind = "invalid_request_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.code


class BodyTooLarge(InferqError):
    """The request body is larger than ``api.max_body_bytes``."""

    status = 413
    code = "request_too_large"
    kind = "invalid_request_error"


def count_rejection(app: Any, code: str) -> None:
    """Count a refused request on the app's metrics (absent before startup completes)."""
    metrics = getattr(getattr(app, "state", None), "metrics", None)
    if metrics is not None:
        metrics.rejections.labels(code=code).inc()


def error_response(request: Request, exc: InferqError) -> JSONResponse:
    """The HTTP answer for an inferq error."""
    count_rejection(request.app, exc.code)
    headers: dict[str, str] = {}
    if isinstance(exc, QueueFull):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, RateLimited):
        headers["retry-after-ms"] = str(exc.retry_after_ms)  # the openai client reads it first
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    body = error_body(exc.message, exc.kind, exc.code, exc.param)
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


# How pydantic names the member of a union an error was found in: ``str``, ``list[...]``.
_MEMBER = re.compile(r"(str|int|float|bool|bytes|none|[a-z-]+\[.*\])")
Members = set[tuple[tuple[Any, ...], str]]


def _members(errors: Sequence[Mapping[str, Any]]) -> Members:
    """The (place, name) of union members in the errors' locations: a name that looks like
    one, at a place where the errors name more than one (so a dict key ``str`` is not)."""
    seen: dict[tuple[Any, ...], set[str]] = {}
    for err in errors:
        loc = tuple(err.get("loc", ()))
        for i, part in enumerate(loc):
            if isinstance(part, str) and _MEMBER.fullmatch(part):
                seen.setdefault(loc[:i], set()).add(part)
    return {(place, name) for place, names in seen.items() if len(names) > 1 for name in names}


def _member_at(loc: tuple[Any, ...], members: Members) -> int | None:
    return next((i for i, part in enumerate(loc) if (loc[:i], part) in members), None)


def _field_path(loc: tuple[Any, ...], members: Members) -> tuple[Any, ...]:
    """``loc`` as the client wrote the field: union members and the tags of tagged unions left
    out (``messages.0.content.1.image_url.url``, not ``...content.list[...].1.image_url...``)."""
    path: list[Any] = []
    tag_follows = False
    for i, part in enumerate(loc):
        if (loc[:i], part) in members:
            tag_follows = "tagged-union[" in part
        elif tag_follows and isinstance(part, str) and path and isinstance(path[-1], int):
            tag_follows = False
        else:
            path.append(part)
    return tuple(path)


def _intended(errors: Sequence[Mapping[str, Any]], members: Members) -> list[Mapping[str, Any]]:
    """``errors`` less those that only say the input is not some other member of a union
    (``content`` is a list with a bad part: not also "should be a valid string")."""
    kept = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        at = _member_at(loc, members)
        deeper = (
            at is not None
            and at == len(loc) - 1
            and any(
                len(other.get("loc", ())) > at + 1 and tuple(other["loc"][:at]) == loc[:at]
                for other in errors
            )
        )
        if not deeper:
            kept.append(err)
    return kept


def describe(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """A readable message naming each bad field and what is wrong, and the first field's name."""
    members = _members(errors)
    errors = [
        {**err, "loc": _field_path(tuple(err.get("loc", ())), members)}
        for err in _intended(errors, members)
    ]
    parts: list[str] = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            detail = ctx.get("error", "invalid JSON")
            position = f" at position {loc[1]}" if len(loc) > 1 else ""
            parts.append(f"body: the body is not valid JSON ({detail}{position})")
        elif err.get("type") == "model_attributes_type" and loc == ("body",):
            parts.append("body: must be a JSON object sent with Content-Type: application/json")
        else:
            message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            parts.append(f"{_location(loc)}: {message}")
    first = errors[0] if errors else {}
    located = first.get("type") != "json_invalid" and len(first.get("loc", ())) > 1
    return "; ".join(parts), _location(first["loc"][1:]) if located else None


async def _inferq(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InferqError)
    if isinstance(exc, ServerError):
        log.warning("queue server error on %s %s: %s", request.method, request.url.path, exc)
        exc = ServerError("the queue server is unavailable; retry later")
    return error_response(request, exc)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, param = describe(exc.errors())
    count_rejection(request.app, "invalid_request")
    body = error_body(message, "invalid_request_error", "invalid_request", param)
    return JSONResponse(body, status_code=422)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    count_rejection(request.app, code)
    body = error_body(str(exc.detail), kind, code, None)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(InferqError, _inferq)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
