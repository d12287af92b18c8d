"""The supervisor: pools scaled to a count (the newest stopped first, not restarted), a dead
child restarted after a back-off that does not hold up the loop; the keeper follows the
autoscaler's recorded decisions and kills a worker whose heartbeat stopped."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pytest
import redis.asyncio as aioredis
from rich.console import Console

from inferq.pools import PoolKeeper
from inferq.supervisor import Child, Supervisor
from queueing import keys
from queueing.pools import PoolDecision, publish_decision, read_running
from queueing.settings import PoolSettings, Settings

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def supervisor() -> Supervisor:
    """Children run ``python <args>``, not ``python -m inferq <args>``."""
    return Supervisor(Console(file=io.StringIO()), program=[sys.executable])


def sleeper(
    settings: Settings, url: str, pool: str, serial: int
) -> tuple[list[str], dict[str, str]]:
    """A stand-in worker process (``inferq worker`` would start a vLLM engine)."""
    return ["-c", "import time; time.sleep(60)"], {}


def test_a_dead_child_is_restarted_after_a_back_off_without_blocking() -> None:
    sup = supervisor()
    dying = Child("dying", [sys.executable, "-c", "raise SystemExit(3)"], {})
    steady = Child("steady", SLEEP, {})
    for child in (dying, steady):
        child.start()
        sup.children.append(child)
    try:
        assert dying.proc is not None and dying.proc.wait(10) == 3
        began = time.monotonic()
        for child in sup.children:
            sup._check(child)
        assert time.monotonic() - began < 0.5, "the back-off did not sleep in the loop"
        assert dying.restart_at is not None and dying.restarts == 0 and steady.alive()
        time.sleep(max(0.0, dying.restart_at - time.monotonic()) + 0.05)
        sup._check(dying)
        assert dying.restarts == 1 and dying.restart_at is None
    finally:
        sup.stop(timeout_s=5)


def test_a_pool_is_scaled_and_a_stopped_member_is_not_restarted() -> None:
    sup = supervisor()
    spawn = lambda serial: (["-c", "import time; time.sleep(60)"], {})  # noqa: E731
    try:
        sup.scale("p", 2, spawn)
        assert [c.name for c in sup.pool("p")] == ["p-1", "p-2"]
        newest = sup.pool("p")[1]
        sup.scale("p", 1, spawn)
        assert [c.name for c in sup.pool("p")] == ["p-1"] and newest.stopping
        assert newest.proc is not None and newest.proc.wait(10) == -15  # SIGTERM
        sup._check(newest)
        assert newest not in sup.children and len(sup.children) == 1
        sup.scale("p", 0, spawn)
        assert sup.pool("p") == []
    finally:
        sup.stop(timeout_s=5)


async def test_the_keeper_follows_the_decisions_and_kills_a_hung_worker(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    settings = Settings(pools={"p": PoolSettings(min_replicas=1, max_replicas=3)})
    sup = supervisor()
    keeper = PoolKeeper(sup, settings, queue_url, command=sleeper)
    try:
        assert await keeper.keep(redis_client) == {"p": 1}, "the minimum before any decision"
        await publish_decision(redis_client, PoolDecision("p", "m", 3, "up 1->3", time.time()))
        assert await keeper.keep(redis_client) == {"p": 3}
        assert await read_running(redis_client) == {"p": 3}
        # Members' registry entries without their alive keys: they stopped beating, one a
        # moment ago (a busy machine delays beats: it is left alone), one long ago (hung).
        late, hung = sup.pool("p")[:2]
        assert late.proc is not None and hung.proc is not None
        for name, child, seen in [("late", late, time.time() - 6), ("hung", hung, 0.0)]:
            entry = {"model": "m", "pool": "p", "pid": child.proc.pid, "health": "ok", "seen": seen}
            await redis_client.hset(keys.WORKERS, name, json.dumps(entry))
        await keeper.keep(redis_client)
        assert hung.proc.wait(10) == -9 and not hung.stopping, "killed, to be restarted"
        with pytest.raises(subprocess.TimeoutExpired):  # silent for 6 s, under hung_after_s
            late.proc.wait(1)
    finally:
        sup.stop(timeout_s=5)
