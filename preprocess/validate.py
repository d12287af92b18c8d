"""Checks made before any pixel is decoded: size in bytes, format, and pixels from the header."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from queueing.errors import InvalidImage
from queueing.settings import PreprocessSettings


@dataclass(frozen=True)
class Header:
    """What an image's header says about it."""

    format: str
    width: int
    height: int
    mode: str


def open_checked(
    data: bytes, settings: PreprocessSettings, *, param: str | None = None
) -> tuple[Header, Image.Image]:
    """Open ``data`` lazily (header only) and refuse it before decoding if it breaks a limit.

    Only the allowed formats' decoders see the bytes. Decompression bombs are refused from
    the dimensions in the header, so their pixels are never allocated.
    """
    if len(data) > settings.max_bytes:
        raise InvalidImage(
            f"the image is {len(data)} bytes; the limit is {settings.max_bytes}", param=param
        )
    allowed = [name.upper() for name in settings.formats]
    Image.init()
    readable = [name for name in allowed if name in Image.OPEN]  # Image.open: KeyError otherwise
    with warnings.catch_warnings():
        # inferq's own pixel limit below decides; Pillow's global bomb warning would not.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=readable)
        except Image.DecompressionBombError as exc:
            raise InvalidImage(f"the image has too many pixels: {exc}", param=param) from None
        except UnidentifiedImageError:
            raise _unidentified(data, allowed, param) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidImage(f"the image's header is corrupt: {exc}", param=param) from None
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage(f"the image is {width}x{height} pixels", param=param)
    if width * height > settings.max_pixels:
        raise InvalidImage(
            f"the image is {width}x{height} = {width * height} pixels; the limit is "
            f"{settings.max_pixels} (a decompression bomb is refused before decoding)",
            param=param,
        )
    fmt = image.format or "unknown"
    return Header(format=fmt, width=width, height=height, mode=image.mode), image


def _unidentified(data: bytes, allowed: list[str], param: str | None) -> InvalidImage:
    """Say whether unreadable bytes are an image of a format not allowed, or no image at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            fmt = Image.open(io.BytesIO(data)).format
        except (Image.DecompressionBombError, OSError, SyntaxError, ValueError):
            fmt = None
    if fmt and fmt not in allowed:
        return InvalidImage(
            f"image format {fmt} is not allowed (allowed: {', '.join(allowed)})", param=param
        )
    return InvalidImage(
        f"the data is not an image in an allowed format ({', '.join(allowed)}), or is corrupt",
        param=param,
    )
