"""``data:`` URLs of image content parts (RFC 2397; base64 only, as OpenAI sends them).

Everything here is cheap and needs no image library: the declared media type and the first
bytes' signature are checked against the allowed formats (Pillow's names: JPEG, PNG, ...);
whether the image decodes is the preprocess tier's to say.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from queueing.errors import InvalidImage

# Media types per format (Pillow's format names); a format not listed: ``image/<format>``.
MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "JPEG": ("image/jpeg", "image/jpg", "image/pjpeg"),
    "PNG": ("image/png", "image/apng"),
    "GIF": ("image/gif",),
    "WEBP": ("image/webp",),
    "BMP": ("image/bmp", "image/x-ms-bmp"),
    "TIFF": ("image/tiff",),
    "ICO": ("image/x-icon", "image/vnd.microsoft.icon"),
}
# The first bytes of each format whose signature is known here.
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "GIF": (b"GIF87a", b"GIF89a"),
    "BMP": (b"BM",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
    "ICO": (b"\x00\x00\x01\x00",),
}
_KNOWN = {*_SIGNATURES, "WEBP"}  # WebP: RIFF, a size, then WEBP


@dataclass(frozen=True)
class DataUrl:
    """The media type a data URL declares and the bytes it carries."""

    media_type: str
    data: bytes


def sniff(data: bytes) -> str | None:
    """The format ``data`` starts like (its signature), or ``None`` if none known here."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for name, signatures in _SIGNATURES.items():
        if data.startswith(signatures):
            return name
    return None


def media_types(formats: Sequence[str]) -> set[str]:
    """The media types a data URL may declare for ``formats``."""
    return {t for f in formats for t in MEDIA_TYPES.get(f.upper(), (f"image/{f.lower()}",))}


def check_format(data: bytes, formats: Sequence[str], *, param: str | None = None) -> None:
    """Refuse ``data`` whose signature is that of a format not in ``formats``, or of no image
    at all (when every allowed format has a known signature)."""
    allowed = [f.upper() for f in formats]
    found = sniff(data)
    if found in allowed:
        return
    names = ", ".join(allowed)
    if found is not None:
        raise InvalidImage(f"the image is {found}, not an allowed format ({names})", param=param)
    if all(f in _KNOWN for f in allowed):
        raise InvalidImage(f"the data is not an image in an allowed format ({names})", param=param)


def parse_data_url(
    url: str,
    *,
    max_bytes: int,
    formats: Sequence[str] | None = None,
    param: str | None = None,
) -> DataUrl:
    """Decode ``data:image/<type>;base64,<payload>``; refuse anything else, or too big a payload.

    The size is checked on the encoded text, before anything is decoded. With ``formats``,
    the declared media type and the bytes' signature must be of an allowed format.
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
    if formats is not None and media_type not in media_types(formats):
        raise InvalidImage(
            f"the data: URL's media type {media_type} is not allowed; send one of "
            f"{', '.join(sorted(media_types(formats)))}",
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
    if formats is not None:
        check_format(data, formats, param=param)
    return DataUrl(media_type=media_type, data=data)
