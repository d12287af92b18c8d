"""One autoscaler acts at a time: a second waits on the lease and takes over when the first
is killed (SIGKILL: no goodbye, the lease has to expire)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from queueing.pools import lease_holder
from tests.workers.support import ROOT, wait_until

TTL_S = 2.0


def autoscaler(url: str, log: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env = {
        **clean,
        "INFERQ_REDIS__URL": url,
        "INFERQ_AUTOSCALER__LEASE_TTL_S": str(TTL_S),
        "INFERQ_AUTOSCALER__INTERVAL_S": "0.5",
        "INFERQ_POOLS": '{"p": {"model": "m", "min_replicas": 0, "max_replicas": 2}}',
    }
    argv = [sys.executable, "-m", "inferq", "autoscaler", "--dry-run"]
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def pid_of(holder: str | None) -> int | None:
    return int(holder.split("-")[-2]) if holder else None


async def test_a_second_autoscaler_waits_then_takes_over_within_seconds(
    redis_client: aioredis.Redis, queue_url: str, tmp_path: Path
) -> None:
    first = autoscaler(queue_url, tmp_path / "first.log")
    second = None
    try:
        await wait_until(lambda: _held_by(redis_client, first.pid), 30, "the first holds the lease")
        second = autoscaler(queue_url, tmp_path / "second.log")
        await asyncio.sleep(3 * TTL_S)  # the second runs, and waits
        assert pid_of(await lease_holder(redis_client)) == first.pid
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        await wait_until(lambda: _held_by(redis_client, second.pid), 15, "the second took over")
        took_s = time.monotonic() - killed
        print(f"took over {took_s:.1f} s after the kill (lease TTL {TTL_S:g} s)")
        assert took_s <= TTL_S + 2.0, f"took over after {took_s:.1f} s"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(20)
    log = (tmp_path / "second.log").read_text()
    waited, took = log.find("took the lease"), log.find("pool p:")
    assert waited != -1 and (took == -1 or took > waited), "it decided nothing before the lease"


async def _held_by(client: aioredis.Redis, pid: int) -> bool:
    return pid_of(await lease_holder(client)) == pid
