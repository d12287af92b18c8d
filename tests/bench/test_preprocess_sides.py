"""The preprocess benches' images look like photos, both sides make the same sizes of them,
and tagged copies differ in bytes only."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bench.preprocess_images import photo, samples, tagged
from bench.preprocess_sides import inferq_one, naive_one


def test_generated_photos_compress_like_photos_not_like_noise() -> None:
    raw = 1200 * 900 * 3
    jpeg = samples(0, 0, 1)[0].data
    assert Image.open(io.BytesIO(jpeg)).size == (640, 480)
    out = io.BytesIO()
    photo(1200, 900, seed=5).save(out, "JPEG", quality=90)
    assert len(out.getvalue()) < raw / 5  # white noise at quality 90 stays near raw / 2


def test_both_sides_prepare_the_same_size() -> None:
    for sample in samples(0, 0, 2):
        assert inferq_one(sample.data) == naive_one(sample.data) == (512, 384)


def test_tagged_images_differ_in_bytes_and_not_in_pixels() -> None:
    for sample in samples(0, 0, 2):  # a JPEG and a PNG
        first, second = tagged(sample.data, "chat-1"), tagged(sample.data, "chat-2")
        assert len({sample.data, first, second}) == 3
        with Image.open(io.BytesIO(sample.data)) as plain, Image.open(io.BytesIO(second)) as tag:
            assert tag.format == plain.format
            assert tag.tobytes() == plain.tobytes()
        assert inferq_one(second) == (512, 384)
    with pytest.raises(ValueError, match="not a JPEG or PNG"):
        tagged(b"GIF89a", "x")
