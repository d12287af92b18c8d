"""``inferq up``'s announcements: starting with a timer, then one line once a worker serves."""

from __future__ import annotations

import asyncio
import io
import threading

import redis.asyncio as aioredis
from rich.console import Console

from api.app import create_app
from inferq.readiness import announce_when_ready
from queueing.catalogue import ModelSpec
from queueing.settings import QueueSettings, Settings
from tests.api.support import serve
from tests.workers.support import running_worker
from workers.engines.scripted import ScriptedEngine


async def test_starting_then_one_serving_line_with_the_url(
    redis_client: aioredis.Redis,
    queue_url: str,
    spec: ModelSpec,
    queue_settings: QueueSettings,
) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    stop = threading.Event()
    async with serve(create_app(Settings(api_keys={}), queue_url)) as base:
        announcing = asyncio.create_task(
            asyncio.to_thread(announce_when_ready, base, console, stop, every_s=0.5)
        )
        await asyncio.sleep(2)
        assert not announcing.done(), "no worker yet: still starting"
        assert f"waiting for a worker for {spec.name}" in out.getvalue()
        async with running_worker(queue_url, ScriptedEngine(), queue_settings, spec=spec):
            assert await asyncio.wait_for(announcing, 10)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"inferq is starting at {base}")
    assert lines[-1].startswith(f"inferq is serving at {base} after ")
    assert f"{base}/v1" in lines[-1] and sum("serving" in line for line in lines) == 1
