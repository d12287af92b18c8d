"""Helpers for API tests: the app in-process, a real uvicorn server, an SSE reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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
