"""OpenAI's error envelope."""

from __future__ import annotations

from typing import Any


def error_body(message: str, kind: str, code: str | None, param: str | None) -> dict[str, Any]:
    """The OpenAI error envelope: ``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
