"""Content-hash keys: same bytes and recipe, same key; anything that changes the output, new key."""

from __future__ import annotations

from preprocess.keys import prepared_key
from queueing.settings import PreprocessSettings


def test_same_bytes_same_settings_same_key() -> None:
    settings = PreprocessSettings()
    assert prepared_key(b"image", settings) == prepared_key(b"image", PreprocessSettings())
    assert len(prepared_key(b"image", settings)) == 64


def test_bytes_and_output_shaping_settings_change_the_key() -> None:
    base = PreprocessSettings()
    key = prepared_key(b"image", base)
    assert prepared_key(b"imagf", base) != key
    assert prepared_key(b"image", PreprocessSettings(max_edge=1024)) != key
    assert prepared_key(b"image", PreprocessSettings(output_format="PNG")) != key
    assert prepared_key(b"image", PreprocessSettings(jpeg_quality=80)) != key


def test_limits_do_not_change_the_key() -> None:
    key = prepared_key(b"image", PreprocessSettings())
    assert prepared_key(b"image", PreprocessSettings(max_bytes=10, max_pixels=10)) == key
