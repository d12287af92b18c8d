"""Benches fail loudly: a watched process that dies or a worker that steps aside ends the run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.watch import BenchFailed, Watch, Watched
from queueing.jobstore import JobStore
from queueing.server import EmbeddedValkey
from queueing.settings import QueueSettings
from tests.workers.support import FAST, ROOT, job, running_worker, wait_until
from workers.engines.scripted import ScriptedEngine

SLEEPER = [sys.executable, "-c", "import time; print('serving', flush=True); time.sleep(60)"]
# A bench in miniature: it starts a "worker", prints its pid, and guards a long phase.
BENCH = """
import asyncio, subprocess, sys
from pathlib import Path
from bench.watch import Watch, Watched, main_or_fail

def main():
    log = Path(sys.argv[1])
    with log.open("wb") as out:
        worker = subprocess.Popen(SLEEPER, stdout=out, stderr=subprocess.STDOUT)
    print(worker.pid, flush=True)
    try:
        asyncio.run(Watch([Watched("inferq worker", worker, log)], poll_s=0.2).guard(
            asyncio.sleep(120)))
    finally:
        worker.kill()
        worker.wait()

main_or_fail(main)
""".replace("SLEEPER", repr(SLEEPER))


def test_a_killed_process_ends_the_guarded_phase_with_its_status_and_log(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(SLEEPER, stdout=out, stderr=subprocess.STDOUT)
    watch = Watch([Watched("inferq worker", proc, log)], poll_s=0.1)
    try:
        time.sleep(0.5)
        proc.kill()
        started = time.monotonic()
        with pytest.raises(BenchFailed, match=r"inferq worker exited with status -9") as failed:
            asyncio.run(watch.guard(asyncio.sleep(30)))
        assert time.monotonic() - started < 1.0
        assert "serving" in str(failed.value), "the reason carries the log's last lines"
    finally:
        proc.kill()
        proc.wait()


async def test_a_bench_whose_worker_is_sigkilled_exits_non_zero_with_the_reason(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bench = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BENCH,
        str(tmp_path / "worker.log"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert bench.stdout is not None
    worker_pid = int(await asyncio.wait_for(bench.stdout.readline(), 30))
    await asyncio.sleep(0.5)
    os.kill(worker_pid, signal.SIGKILL)
    killed = time.monotonic()
    _, err = await asyncio.wait_for(bench.communicate(), 10)
    took = time.monotonic() - killed
    assert bench.returncode == 1, err
    assert "bench failed: inferq worker exited with status -9" in err.decode()
    assert took < 3.0, took


async def test_a_worker_that_says_stalled_ends_the_guarded_phase(
    redis_client: aioredis.Redis, valkey: EmbeddedValkey, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    await store.enqueue(job(max_tokens=400))
    engine = ScriptedEngine(token_delay_s=0.01)
    settings = FAST.model_copy(update={"stall_s": 0.5, "hang_s": 60.0, "probe_every_s": 600.0})
    async with running_worker(valkey.url, engine, queue_settings, settings, grace_s=0):
        await wait_until(lambda: asyncio.sleep(0, engine.steps.count > 5), 5, "steps")
        engine.freeze()
        with pytest.raises(BenchFailed, match=r"stepped aside: engine made no step"):
            await Watch([], valkey.url, poll_s=0.1).guard(asyncio.sleep(30))
