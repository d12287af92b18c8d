"""The pool: as many processes as asked, each capped at one thread in every library."""

from __future__ import annotations

import os

from preprocess.pool import THREAD_ENV, pool_size, process_pool, thread_env


def test_thread_env_names_every_library() -> None:
    env = thread_env(3)
    assert set(env) == set(THREAD_ENV) and set(env.values()) == {"3"}
    assert "OMP_NUM_THREADS" in env and "OPENBLAS_NUM_THREADS" in env and "MKL_NUM_THREADS" in env


def test_configured_processes_win_over_the_cpu_count() -> None:
    assert pool_size(6, None) == 6
    assert pool_size(6, 2) == 2
    assert pool_size(0, None) == 1


def test_pool_processes_run_single_threaded() -> None:
    with process_pool(2) as pool:
        values = list(
            pool.map(os.getenv, ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"])
        )
        pids = {pool.submit(os.getpid).result() for _ in range(4)}
    assert values == ["1", "1", "1"]
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
