"""Preparation: the model's size, upright, RGB, encoded; bad images fail with a reason."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageStat

from preprocess.prepare import fit, prepare
from queueing.errors import InvalidImage
from queueing.settings import PreprocessSettings
from tests.preprocess.images import encode, halves, scene

SETTINGS = PreprocessSettings(max_edge=512)
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def test_fit_scales_the_longer_side_down_only() -> None:
    assert fit(4000, 3000, 512) == (512, 384)
    assert fit(3000, 4000, 512) == (384, 512)
    assert fit(300, 200, 512) == (300, 200)
    assert fit(10_000, 3, 512) == (512, 1)


def test_a_large_jpeg_comes_out_at_the_model_size_and_looks_the_same() -> None:
    source = scene(4000, 3000)
    prepared = prepare(encode(source, "JPEG", quality=90), SETTINGS)
    assert (prepared.width, prepared.height) == (512, 384)
    assert (prepared.source_format, prepared.source_width, prepared.source_height) == (
        "JPEG",
        4000,
        3000,
    )
    assert prepared.media_type == "image/jpeg"
    out = decoded(prepared.data)
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (512, 384))
    reference = source.resize((512, 384), Image.Resampling.LANCZOS)
    mean_error = sum(ImageStat.Stat(ImageChops.difference(out, reference)).mean) / 3
    assert mean_error < 3.0  # draft decoding and reducing_gap cost no visible quality


def test_png_output_and_small_images_are_not_enlarged() -> None:
    prepared = prepare(encode(scene(300, 200), "PNG"), PreprocessSettings(output_format="PNG"))
    assert prepared.media_type == "image/png"
    out = decoded(prepared.data)
    assert (out.format, out.size) == ("PNG", (300, 200))
    assert ImageChops.difference(out, scene(300, 200)).getbbox() is None  # lossless, untouched


@pytest.mark.parametrize(
    ("orientation", "size", "top_left", "bottom_right"),
    [
        (1, (200, 100), RED, BLUE),
        (3, (200, 100), BLUE, RED),
        (6, (100, 200), RED, BLUE),  # rotated 90° clockwise: the left half is now on top
        (8, (100, 200), BLUE, RED),
    ],
)
def test_exif_orientation_is_applied(
    orientation: int,
    size: tuple[int, int],
    top_left: tuple[int, int, int],
    bottom_right: tuple[int, int, int],
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(halves(200, 100, RED, BLUE), "JPEG", quality=95, exif=exif.tobytes())
    out = decoded(prepare(data, SETTINGS).data)
    assert out.size == size
    assert near(out.getpixel((5, 5)), top_left)
    assert near(out.getpixel((size[0] - 5, size[1] - 5)), bottom_right)


def test_exif_orientation_with_a_downscale() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(halves(2000, 1000, RED, BLUE), "JPEG", exif=exif.tobytes())
    prepared = prepare(data, SETTINGS)
    assert (prepared.width, prepared.height) == (256, 512)
    out = decoded(prepared.data)
    assert near(out.getpixel((128, 10)), RED) and near(out.getpixel((128, 500)), BLUE)


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # full magenta and yellow: red
    out = decoded(prepare(encode(cmyk, "JPEG", quality=95), SETTINGS).data)
    assert out.mode == "RGB" and near(out.getpixel((32, 32)), RED)


def test_transparent_png_is_flattened_on_white() -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 32, 64))
    out = decoded(prepare(encode(image, "PNG"), SETTINGS).data)
    assert out.mode == "RGB"
    assert near(out.getpixel((8, 32)), BLUE) and near(out.getpixel((56, 32)), WHITE)


def test_palette_gif_with_transparency_and_grey_alpha() -> None:
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (16, 0, 32, 32))
    out = decoded(prepare(encode(palette, "GIF", transparency=0), SETTINGS).data)
    assert near(out.getpixel((4, 16)), WHITE) and near(out.getpixel((28, 16)), BLUE)
    grey = Image.new("LA", (32, 32), (0, 255))
    assert near(decoded(prepare(encode(grey, "PNG"), SETTINGS).data).getpixel((4, 4)), (0, 0, 0))


def test_sixteen_bit_png_becomes_eight_bit_rgb() -> None:
    image = Image.new("I;16", (32, 32), 0x8000)
    out = decoded(prepare(encode(image, "PNG"), SETTINGS).data)
    assert out.mode == "RGB" and near(out.getpixel((4, 4)), (128, 128, 128), tolerance=2)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_images_are_refused(fmt: str) -> None:
    data = encode(scene(640, 480), fmt)
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        prepare(data[: len(data) // 2], SETTINGS, param="image")


def test_corrupt_png_data_is_refused() -> None:
    data = bytearray(encode(scene(640, 480), "PNG"))
    start = data.index(b"IDAT") + 100
    data[start : start + 64] = bytes(64)  # damaged compressed pixels (the CRC no longer matches)
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        prepare(bytes(data), SETTINGS)


def test_the_same_bytes_get_the_same_key() -> None:
    data = encode(scene(100, 80), "PNG")
    assert prepare(data, SETTINGS).key == prepare(data, SETTINGS).key
    assert prepare(data, SETTINGS).key != prepare(encode(scene(100, 81), "PNG"), SETTINGS).key


def test_an_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in (RED, BLUE, WHITE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    out = decoded(prepare(data, SETTINGS).data)
    assert out.size == (40, 30) and near(out.getpixel((20, 15)), RED)
