"""Refusals made before decoding: bytes, format, pixels (decompression bombs), garbage."""

from __future__ import annotations

import pytest

from preprocess.validate import open_checked
from queueing.errors import InvalidImage
from queueing.settings import PreprocessSettings
from tests.preprocess.images import encode, jpeg_with_size, png_header_only, scene

SETTINGS = PreprocessSettings()


def test_an_allowed_image_is_opened_without_decoding() -> None:
    header, image = open_checked(encode(scene(640, 480), "PNG"), SETTINGS)
    assert (header.format, header.width, header.height, header.mode) == ("PNG", 640, 480, "RGB")
    assert image.tile  # pixels still to decode: nothing decoded yet


@pytest.mark.parametrize(
    ("data", "width", "height"),
    [
        (png_header_only(10_000, 10_000), 10_000, 10_000),  # over inferq's limit
        (png_header_only(100_000, 100_000), 100_000, 100_000),  # over Pillow's own bomb limit
        (jpeg_with_size(30_000, 20_000), 30_000, 20_000),
    ],
)
def test_decompression_bombs_are_refused_from_the_header(
    data: bytes, width: int, height: int
) -> None:
    assert len(data) < 2_000
    with pytest.raises(InvalidImage, match="pixels") as caught:
        open_checked(data, SETTINGS)
    assert caught.value.code == "invalid_image"
    assert caught.value.status == 400


def test_the_pixel_limit_is_a_setting() -> None:
    data = encode(scene(200, 100), "PNG")
    with pytest.raises(InvalidImage, match="20000 pixels; the limit is 19999"):
        open_checked(data, PreprocessSettings(max_pixels=19_999))
    assert open_checked(data, PreprocessSettings(max_pixels=20_000))[0].width == 200


def test_over_size_bytes_are_refused_before_opening() -> None:
    data = encode(scene(300, 300), "PNG")
    with pytest.raises(InvalidImage, match=f"{len(data)} bytes; the limit is 1000"):
        open_checked(data, PreprocessSettings(max_bytes=1000))


@pytest.mark.parametrize(("fmt", "name"), [("BMP", "BMP"), ("TIFF", "TIFF"), ("PPM", "PPM")])
def test_disallowed_formats_are_named(fmt: str, name: str) -> None:
    with pytest.raises(InvalidImage, match=f"image format {name} is not allowed"):
        open_checked(encode(scene(32, 32), fmt), SETTINGS)


def test_the_allowlist_is_a_setting() -> None:
    data = encode(scene(32, 32), "GIF")
    assert open_checked(data, SETTINGS)[0].format == "GIF"
    with pytest.raises(InvalidImage, match="image format GIF is not allowed"):
        open_checked(data, PreprocessSettings(formats=["JPEG", "PNG"]))


@pytest.mark.parametrize(
    "data",
    [b"hello, this is text", b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"\xff\xd8\xff" + b"\0" * 10],
)
def test_non_images_and_broken_headers_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidImage, match=r"not an image|corrupt"):
        open_checked(data, SETTINGS)
