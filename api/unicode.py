"""Refuse text no tokenizer can take, before anything is queued."""

from __future__ import annotations

import json

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel


def check_unicode(body: BaseModel) -> None:
    """Refuse lone surrogates (``"\\ud800"`` is valid JSON but not text a tokenizer can take)."""
    try:
        json.dumps(body.model_dump(), ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        error = {
            "type": "string_unicode",
            "loc": ("body",),
            "msg": "text must be valid Unicode; lone surrogates such as \\ud800 are not allowed",
        }
        raise RequestValidationError([error]) from exc
