"""``inferq batch``: submit a file and wait with a progress bar, then status, list, download."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import redis.asyncio as aioredis

from api.app import create_app
from queueing.catalogue import ModelSpec
from queueing.server import EmbeddedValkey
from queueing.settings import BatchSettings, FileSettings, QueueSettings, Settings
from tests.api.support import serve
from tests.workers.batch.support import chat_line, jsonl, running_arq
from tests.workers.support import running_worker
from workers.engines.scripted import ScriptedEngine


async def _inferq(*args: str) -> tuple[int, str]:
    """``inferq ARGS`` in a process of its own; its exit status and output."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inferq",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_submit_waits_then_status_list_and_download(
    redis_client: aioredis.Redis,
    queue_url: str,
    queue_settings: QueueSettings,
    spec: ModelSpec,
    tmp_path: Path,
    valkey: EmbeddedValkey,
) -> None:
    settings = Settings(
        queue=queue_settings,
        files=FileSettings(local_dir=tmp_path / "files"),
        batch=BatchSettings(poll_s=0.05, arq_url=valkey.url),  # arq needs a single server
    )
    path = tmp_path / "requests.jsonl"
    path.write_bytes(jsonl([chat_line(f"c{i}", spec.name) for i in range(6)]))
    async with (
        serve(create_app(settings, queue_url)) as base,
        running_arq(settings, queue_url),
        running_worker(queue_url, ScriptedEngine(), settings.queue, spec=spec),
    ):
        code, out = await _inferq("batch", "submit", str(path), "--wait", "--base-url", base)
        assert code == 0, out
        assert "completed: 6 completed, 0 failed of 6" in out
        batch_id = out.split("batch ")[1].split()[0]
        code, out = await _inferq("batch", "list", "--base-url", base)
        assert code == 0 and batch_id in out and "completed" in out
        code, out = await _inferq("batch", "status", batch_id, "--base-url", base)
        assert code == 0 and "completed" in out
        target = tmp_path / "out.jsonl"
        code, out = await _inferq(
            "batch", "download", batch_id, "-o", str(target), "--base-url", base
        )
        assert code == 0, out
        code, missing = await _inferq("batch", "status", "batch_nope", "--base-url", base)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(r["custom_id"] for r in rows) == [f"c{i}" for i in range(6)]
    assert code == 1 and "404" in missing
