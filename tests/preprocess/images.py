"""Small images made for the preprocess tests: encoded bytes of chosen content and format."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image, ImageDraw


def scene(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A gradient with shapes on it (not noise), converted to ``mode``."""
    base = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
            Image.linear_gradient("L").rotate(90).resize((width, height)),
        ),
    )
    draw = ImageDraw.Draw(base)
    draw.ellipse((width // 8, height // 8, width // 2, height // 2), fill=(200, 40, 40))
    draw.rectangle(
        (width // 2, height // 2, width - width // 8, height - height // 8), fill=(30, 90, 200)
    )
    return base.convert(mode)


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    """``image`` saved as ``fmt``."""
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def halves(
    width: int, height: int, left: tuple[int, int, int], right: tuple[int, int, int]
) -> Image.Image:
    """Left half one colour, right half another."""
    image = Image.new("RGB", (width, height), left)
    image.paste(right, (width // 2, 0, width, height))
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with one tiny IDAT chunk:
    a decompression bomb's shape, without its megabytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_with_size(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is rewritten to claim ``width`` x ``height``."""
    data = bytearray(encode(scene(64, 48), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)
