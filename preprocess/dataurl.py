"""``data:`` URLs of image content parts (RFC 2397; base64 only, as OpenAI sends them)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from queueing.errors import InvalidImage


@dataclass(frozen=True)
class DataUrl:
    """The media type a data URL declares and the bytes it carries."""

    media_type: str
    data: bytes


def parse_data_url(url: str, *, max_bytes: int, param: str | None = None) -> DataUrl:
    """Decode ``data:image/<type>;base64,<payload>``; refuse anything else, or too big a payload.

    The size is checked on the encoded text, before anything is decoded.
    """
    if not url[:5].lower() == "data:":
        raise InvalidImage("image_url must be a data: URL (data:image/png;base64,...)", param=param)
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise InvalidImage("the data: URL has no ',' before its payload", param=param)
    media_type, *attributes = (part.strip().lower() for part in header.split(";"))
    if not media_type.startswith("image/"):
        raise InvalidImage(
            f"the data: URL's media type must be image/*, not {media_type or 'empty'!r}",
            param=param,
        )
    if "base64" not in attributes:
        raise InvalidImage("the data: URL must be base64-encoded (;base64,)", param=param)
    payload = "".join(payload.split())
    if len(payload) // 4 * 3 > max_bytes + 2:
        raise InvalidImage(
            f"the image is over {max_bytes} bytes (the limit for one image)", param=param
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(
            f"the data: URL's payload is not valid base64: {exc}", param=param
        ) from None
    if not data:
        raise InvalidImage("the data: URL carries no bytes", param=param)
    return DataUrl(media_type=media_type, data=data)
