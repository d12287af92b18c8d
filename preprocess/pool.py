"""A process pool sized to the usable CPUs, each process single-threaded in every library."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

# Thread-count knobs of OpenMP (torch's intra-op pool reads OMP_NUM_THREADS), the BLAS
# builds numpy and torch use, and numexpr.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def thread_env(threads: int) -> dict[str, str]:
    """The environment that caps every library's thread pool at ``threads``."""
    return dict.fromkeys(THREAD_ENV, str(threads))


def pool_size(cpus: int, configured: int | None) -> int:
    """Processes to run: the configured count, else one per usable CPU."""
    return configured if configured is not None else max(1, cpus)


def _single_threaded() -> None:
    """Pool initializer: one thread per library in each worker process (before their import)."""
    os.environ.update(thread_env(1))


def process_pool(processes: int) -> ProcessPoolExecutor:
    """``processes`` spawned workers, each capped at one thread, so the pool fills the CPUs."""
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_single_threaded,
    )
