"""Fixtures for API tests: settings, an in-process client, and a simulated worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.settings import ApiSettings, FileSettings, QueueSettings, Settings
from queueing.workqueue import WorkQueue
from tests.api.support import api_client


@pytest.fixture
def api_settings(queue_settings: QueueSettings, tmp_path: Path) -> Settings:
    """Default settings with short leases, a short SSE keep-alive, files under ``tmp_path``."""
    return Settings(
        queue=queue_settings,
        api=ApiSettings(sse_ping_s=1.0),
        files=FileSettings(local_dir=tmp_path / "files"),
        api_keys={},
    )


@pytest.fixture
async def client(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the app (in-process, lifespan running) over a flushed server."""
    async with api_client(api_settings, queue_url) as http:
        yield http


@pytest.fixture
def worker(
    redis_client: aioredis.Redis, spec: ModelSpec, queue_settings: QueueSettings
) -> WorkQueue:
    """A simulated worker: the real claim/emit/complete path, driven by the test."""
    return WorkQueue(redis_client, spec, "test-worker", queue_settings)
