"""Photo-like test images for the preprocess bench: sky gradients, soft shapes, smooth
textures, text and a little sensor grain (no white noise: it compresses like no real photo)."""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageFont


@dataclass(frozen=True)
class Sample:
    """One encoded test image."""

    name: str
    data: bytes


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like RGB picture of ``width`` x ``height``."""
    rng = random.Random(seed)
    size = (width, height)
    sky, ground = _colour(rng), _colour(rng)
    gradient = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    picture = Image.composite(Image.new("RGB", size, ground), Image.new("RGB", size, sky), gradient)
    texture = Image.effect_noise((max(2, width // 48), max(2, height // 48)), 60)
    texture = texture.resize(size, Image.Resampling.BICUBIC).convert("RGB")
    picture = Image.blend(picture, texture, 0.25)
    draw = ImageDraw.Draw(picture)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randrange(width // 20, width // 3), rng.randrange(height // 20, height // 3)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + w, y + h), fill=_colour(rng))
    picture = picture.filter(ImageFilter.GaussianBlur(max(1, width // 1500)))
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=max(10, height // 25))
    for line in range(3):
        text = f"inferq {seed}-{line} THE QUICK BROWN FOX"
        draw.text(
            (width // 20, height // 10 + line * height // 8), text, fill=_colour(rng), font=font
        )
    grain = Image.effect_noise(size, 40).convert("RGB")
    return Image.blend(picture, grain, 0.06)


def encode(image: Image.Image, fmt: str) -> bytes:
    """``image`` as a camera (JPEG, quality 90) or a screenshot tool (PNG) would save it."""
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=90)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def samples(large_jpeg: int, large_png: int, small: int, seed: int = 1) -> list[Sample]:
    """12 MP JPEGs and PNGs (4000 x 3000) and small ones (640 x 480, alternating JPEG/PNG)."""
    out: list[Sample] = []
    for i in range(large_jpeg):
        out.append(Sample(f"12mp-{i}.jpg", encode(photo(4000, 3000, seed + i), "JPEG")))
    for i in range(large_png):
        out.append(Sample(f"12mp-{i}.png", encode(photo(4000, 3000, seed + 100 + i), "PNG")))
    for i in range(small):
        fmt = "JPEG" if i % 2 == 0 else "PNG"
        out.append(Sample(f"small-{i}.{fmt.lower()}", encode(photo(640, 480, seed + 200 + i), fmt)))
    return out


def tagged(data: bytes, tag: str) -> bytes:
    """``data`` (a JPEG or PNG) with ``tag`` in a comment (JPEG COM segment, PNG tEXt chunk):
    other bytes, so another content hash, and the same pixels and decoding work."""
    text = tag.encode()
    if data.startswith(b"\xff\xd8"):
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        after_header = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4  # IHDR comes first
        body = b"tEXt" + b"Comment\0" + text
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        return data[:after_header] + chunk + data[after_header:]
    raise ValueError("not a JPEG or PNG")


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)
