"""Helpers for batch tests: input files, a runner over a real server, reading result files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queueing import keys
from queueing.batch_record import Batch, BatchStatus
from queueing.batches import Batches
from queueing.files import Files
from queueing.settings import BatchSettings, FileSettings, QueueSettings, Settings
from workers.batch.arq_app import batch_worker
from workers.batch.runner import BatchRunner
from workers.batch.serve import arq_url, batch_runner

CHAT = "/v1/chat/completions"


def chat_line(custom_id: str, model: str, text: str = "hello there", **body: Any) -> dict[str, Any]:
    """One input line asking ``model`` to chat."""
    request = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 4}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": {**request, **body}}


def jsonl(lines: list[Any]) -> bytes:
    """Lines as a JSONL file (dicts as JSON, bytes as they are)."""
    return b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines)


async def chunked(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    """``data`` in pieces, as an upload arrives."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


@dataclass
class BatchEnv:
    """A runner with its files and batch records, over one server."""

    runner: BatchRunner
    batches: Batches
    files: Files
    settings: Settings

    async def submit(self, data: bytes, tenant: str = "local", endpoint: str = CHAT) -> Batch:
        """Upload ``data`` and record a batch over it (as the API does)."""
        file = await self.files.create(tenant, "batch", "in.jsonl", chunked(data))
        now = int(time.time())
        batch = Batch(
            id=keys.new_batch_id(),
            tenant=tenant,
            endpoint=endpoint,
            input_file_id=file.id,
            completion_window="24h",
            status=BatchStatus.VALIDATING,
            created_at=now,
            expires_at=now + 86_400,
        )
        await self.batches.create(batch)
        return batch

    async def lines(self, file_id: str | None, tenant: str = "local") -> list[dict[str, Any]]:
        """A result file's lines, parsed ([] when there is no file)."""
        if file_id is None:
            return []
        file = await self.files.get(tenant, file_id)
        data = b"".join([chunk async for chunk in self.files.content(file)])
        return [json.loads(line) for line in data.splitlines()]


@asynccontextmanager
async def batch_env(
    url: str, tmp_path: Path, queue_settings: QueueSettings, **batch: Any
) -> AsyncIterator[BatchEnv]:
    """A batch runner over ``url`` with files under ``tmp_path``."""
    options = {"poll_s": 0.05, "slice_s": 60.0, **batch}
    settings = Settings(
        queue=queue_settings,
        files=FileSettings(local_dir=tmp_path / "files"),
        batch=BatchSettings(**options),
    )
    async with batch_runner(settings, url) as (runner, batches):
        files = runner.validator.files
        yield BatchEnv(runner, batches, files, settings)


@asynccontextmanager
async def running_arq(settings: Settings, url: str) -> AsyncIterator[BatchRunner]:
    """A real arq worker running batches in this event loop; stopped on exit."""
    async with batch_runner(settings, url) as (runner, batches):
        worker = batch_worker(
            arq_url(settings, url), runner, batches, handle_signals=False, poll_delay=0.1
        )
        task = asyncio.create_task(worker.async_run())
        try:
            yield runner
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await worker.close()
