"""The preprocess bench's images look like photos and both sides make the same sizes of them."""

from __future__ import annotations

import io

from PIL import Image

from bench.preprocess_images import photo, samples
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
