"""Decode an image straight to the size the model needs and encode it for the model's processor."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from preprocess.keys import prepared_key
from preprocess.validate import open_checked
from queueing.errors import InvalidImage
from queueing.settings import PreprocessSettings

_ORIENTATION = 0x0112
# EXIF orientation → the transpose that shows the image upright (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the model's processor, and where it came from."""

    key: str
    data: bytes
    media_type: str
    width: int
    height: int
    source_format: str
    source_width: int
    source_height: int


def fit(width: int, height: int, max_edge: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled down (never up) so the longer side is at most ``max_edge``."""
    scale = max_edge / max(width, height)
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare(
    data: bytes, settings: PreprocessSettings, *, param: str | None = None
) -> PreparedImage:
    """Validate, decode (JPEG draft mode), convert to RGB, resize, turn upright, and encode."""
    header, image = open_checked(data, settings, param=param)
    target = fit(header.width, header.height, settings.max_edge)
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
        if header.format == "JPEG":
            # The decoder scales by 1/2, 1/4 or 1/8 itself, never below ``target``.
            image.draft("RGB", target)
        image.load()
        rgb = _to_rgb(image)
        if rgb.size != target:
            rgb = rgb.resize(target, Image.Resampling.LANCZOS, reducing_gap=settings.reducing_gap)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"the image is truncated or corrupt: {exc}", param=param) from None
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    return PreparedImage(
        key=prepared_key(data, settings),
        data=_encode(rgb, settings),
        media_type=_MEDIA_TYPES[settings.output_format],
        width=rgb.width,
        height=rgb.height,
        source_format=header.format,
        source_width=header.width,
        source_height=header.height,
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels: transparency over white (as a viewer shows it); CMYK and palettes converted."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, settings: PreprocessSettings) -> bytes:
    """The prepared image in the settings' output format."""
    out = io.BytesIO()
    if settings.output_format == "JPEG":
        image.save(out, "JPEG", quality=settings.jpeg_quality)
    else:
        image.save(out, "PNG", compress_level=1)
    return out.getvalue()
