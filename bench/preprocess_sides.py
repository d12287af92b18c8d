"""The two sides of the preprocess bench, each timed in its own interpreter.

``inferq``: preprocess.prepare (validation, JPEG draft decoding, reducing_gap resize) on a
process pool sized to the usable CPUs. ``naive``: what a worker does with plain Pillow: full
decode, convert, resize, encode, on a thread pool of default size.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager

from PIL import Image

from preprocess.cpu import usable_cpus
from preprocess.pool import pool_size, process_pool
from preprocess.prepare import fit, prepare
from queueing.settings import PreprocessSettings

SETTINGS = PreprocessSettings()


def inferq_one(data: bytes) -> tuple[int, int]:
    """Prepare one image the inferq way; its prepared size."""
    prepared = prepare(data, SETTINGS)
    return prepared.width, prepared.height


def naive_one(data: bytes) -> tuple[int, int]:
    """Prepare one image the plain way: decode it whole, resize, encode the same as inferq."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize(fit(*image.size, SETTINGS.max_edge), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=SETTINGS.jpeg_quality)
    return image.size


@contextmanager
def executor(side: str) -> Iterator[tuple[Executor, Callable[[bytes], tuple[int, int]]]]:
    """The side's executor (started and warm) and its per-image function."""
    if side == "inferq":
        with process_pool(pool_size(usable_cpus(), None)) as pool:
            list(pool.map(len, [b""] * 32))  # start every process before the clock does
            yield pool, inferq_one
    else:
        with ThreadPoolExecutor() as threads:
            yield threads, naive_one


def run(side: str, images: list[bytes], rounds: int) -> dict[str, object]:
    """Images per second of ``side`` over ``rounds`` passes of ``images`` (one warm-up pass)."""
    with executor(side) as (pool, one):
        sizes = list(pool.map(one, images))
        started = time.perf_counter()
        for _ in range(rounds):
            list(pool.map(one, images))
        elapsed = time.perf_counter() - started
    return {"img_s": rounds * len(images) / elapsed, "seconds": elapsed, "sizes": sizes}
