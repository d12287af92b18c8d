"""Helpers for API tests: the app in-process, a real uvicorn server (in this process or its
own), an SSE reader."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from queueing.settings import Settings
from tests.conftest import free_port


@asynccontextmanager
async def api_client(settings: Settings, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app, inside the app's lifespan."""
    app = create_app(settings, redis_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Run ``app`` on a real uvicorn server in this event loop; yields its base URL."""
    port = port or free_port(18000)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws="none", lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn exited during startup"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextmanager
def api_process(queue_url: str, log: Path, env: dict[str, str]) -> Iterator[tuple[int, str]]:
    """``python -m api`` on a free port (``env`` adds ``INFERQ_*`` settings), ready for work;
    yields its pid and base URL."""
    port = free_port(18500)
    settings = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    settings |= {
        "INFERQ_REDIS__URL": queue_url,
        "INFERQ_API__HOST": "127.0.0.1",
        "INFERQ_API__PORT": str(port),
        "INFERQ_FILES__LOCAL_DIR": str(log.parent / "files"),
        **env,
    }
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api"], env=settings, stdout=output, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    checks = httpx.get(f"{base}/readyz", timeout=1).json()["checks"]
                    if checks["redis"] and checks["events"]:  # no worker: the API's own checks
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API did not become ready"
                time.sleep(0.1)
            yield proc.pid, base
        finally:
            proc.terminate()
            proc.wait(15)


@dataclass(frozen=True)
class Sse:
    """One server-sent event."""

    id: str
    event: str
    data: str

    def json(self) -> Any:
        """The data, parsed."""
        return json.loads(self.data)

    @property
    def terminal(self) -> bool:
        """The status event that ends a job's stream."""
        return self.event == "status" and self.json()["status"] in {
            "succeeded",
            "failed",
            "cancelled",
        }


async def read_events(lines: AsyncIterator[str], limit: int | None = None) -> list[Sse]:
    """Parse events from ``lines`` until ``limit`` events or the stream ends."""
    events: list[Sse] = []
    fields: dict[str, str] = {}
    async for line in lines:
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if fields:
            events.append(Sse(fields.get("id", ""), fields.get("event", ""), fields["data"]))
            fields = {}
            if limit is not None and len(events) >= limit:
                break
    return events
