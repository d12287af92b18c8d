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


def inferq_task(data: bytes) -> tuple[tuple[int, int], float]:
    """``inferq_one`` and the CPU seconds it took (its pool process is single-threaded)."""
    started = time.process_time()
    size = inferq_one(data)
    return size, time.process_time() - started


def naive_task(data: bytes) -> tuple[tuple[int, int], float]:
    """``naive_one``; its threads share one process, whose CPU time ``run`` reads instead."""
    return naive_one(data), 0.0


Task = Callable[[bytes], tuple[tuple[int, int], float]]


@contextmanager
def executor(side: str) -> Iterator[tuple[Executor, Task]]:
    """The side's executor (started and warm) and its per-image task."""
    if side == "inferq":
        with process_pool(pool_size(usable_cpus(), None)) as pool:
            list(pool.map(len, [b""] * 32))  # start every process before the clock does
            yield pool, inferq_task
    else:
        with ThreadPoolExecutor() as threads:
            yield threads, naive_task


def run(side: str, images: list[bytes], rounds: int) -> dict[str, object]:
    """Images per second and per CPU second of ``side`` over a stream of ``rounds`` passes
    of ``images`` submitted at once, as a service receives them (after one warm-up pass).
    CPU counts this process and, for inferq, its pool's tasks."""
    with executor(side) as (pool, task):
        sizes = [size for size, _ in pool.map(task, images)]
        started, cpu_started = time.perf_counter(), time.process_time()
        task_cpu = sum(cpu for _, cpu in pool.map(task, images * rounds))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started + task_cpu
    done = rounds * len(images)
    return {"img_s": done / elapsed, "img_cpu_s": done / cpu, "seconds": elapsed, "sizes": sizes}
