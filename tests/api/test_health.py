"""Liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis.asyncio as aioredis

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.connection import connect
from queueing.server import EmbeddedValkey
from queueing.settings import PoolSettings, QueueSettings, Settings
from queueing.workqueue import WorkQueue
from tests.api.support import api_client
from tests.conftest import free_port
from tests.queueing.records import claim_all
from tests.workers.support import running_worker, wait_until
from workers.engines.scripted import ScriptedEngine
from workers.heartbeat import Load, Progress, heartbeat


async def test_ready_once_a_worker_serves_the_model(
    client: httpx.AsyncClient,
    queue_url: str,
    spec: ModelSpec,
    queue_settings: QueueSettings,
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    waiting = await client.get("/readyz")
    assert waiting.status_code == 503
    assert waiting.json() == {
        "status": "unavailable",
        "checks": {"redis": True, "events": True, "catalogue": True, "workers": False},
        "models": {spec.name: "waiting for a worker"},
    }
    job = (await client.post("/v1/jobs", json={"prompt": "hi"})).json()
    assert job["status"] == "queued" and job["status_detail"] == "waiting for a worker"
    # A worker that holds its jobs a while: this one stays queued behind the first.
    engine = ScriptedEngine(token_delay_s=1.0)
    async with running_worker(queue_url, engine, queue_settings, spec=spec):

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_until(ready, 10, "/readyz 200 once the worker beats")
        body = (await client.get("/readyz")).json()
        assert body["models"] == {spec.name: "serving"} and body["checks"]["workers"] is True
        queued = (await client.post("/v1/jobs", json={"prompt": "hi"})).json()
        assert "status_detail" not in queued
    assert (await client.get("/readyz")).status_code == 503, "its worker stopped"


async def test_not_ready_without_model_files(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, tmp_path: Path
) -> None:
    settings = api_settings.model_copy(update={"models_dir": tmp_path})
    async with api_client(settings, queue_url) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["catalogue"] is False
        assert (await client.get("/healthz")).status_code == 200


async def test_not_ready_when_the_queue_server_is_gone(
    api_settings: Settings, tmp_path: Path, spec: ModelSpec
) -> None:
    server = EmbeddedValkey(tmp_path, free_port(17000)).start()
    try:
        async with api_client(api_settings, server.url) as client:
            beat = await connect(server.url)
            await heartbeat(
                beat, "w", spec.name, Progress(), lambda: Load(0.0, 0), None, lambda: {}
            ).beat()
            await beat.aclose()
            assert (await client.get("/readyz")).status_code == 200
            server.stop()
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"] is False
            lookup = await client.get(f"/v1/jobs/{keys.new_job_id(0)}")
            assert lookup.status_code == 503
            assert lookup.json()["error"]["code"] == "queue_unavailable"
    finally:
        server.stop()


async def test_metrics(client: httpx.AsyncClient, worker: WorkQueue, spec: ModelSpec) -> None:
    for _ in range(2):
        assert (await client.post("/v1/jobs", json={"prompt": "hi"})).status_code == 202
    body = {"prompt": "hi", "class": "batch", "params": {"max_tokens": 5}}
    assert (await client.post("/v1/jobs", json=body)).status_code == 202
    assert (await client.post("/v1/jobs", json={"model": "x", "prompt": "hi"})).status_code == 404
    scrape = await client.get("/metrics")
    assert scrape.headers["content-type"].startswith("text/plain")
    lines = scrape.text.splitlines()
    name = spec.name
    assert f'inferq_jobs_submitted_total{{job_class="standard",model="{name}"}} 2.0' in lines
    assert f'inferq_jobs_submitted_total{{job_class="batch",model="{name}"}} 1.0' in lines
    assert 'inferq_api_rejections_total{code="model_not_found"} 1.0' in lines
    assert not [line for line in lines if "_created" in line], "no duplicate _created series"
    assert sample(lines, f'inferq_queued_units{{model="{name}"}}') > 0.5
    assert sample(lines, f'inferq_inflight_units{{model="{name}"}}') == 0

    await claim_all(worker, 100.0, 10)
    lines = (await client.get("/metrics")).text.splitlines()
    assert sample(lines, f'inferq_queued_units{{model="{name}"}}') == 0
    assert sample(lines, f'inferq_inflight_units{{model="{name}"}}') > 0.5


def sample(lines: list[str], series: str) -> float:
    """The value of one series in a scrape."""
    return float(next(line for line in lines if line.startswith(f"{series} ")).split()[-1])


async def test_readiness_and_the_model_list_follow_the_pools(
    redis_client: aioredis.Redis,
    queue_url: str,
    api_settings: Settings,
    spec: ModelSpec,
    vlm: ModelSpec,
) -> None:
    # The catalogue lists the VLM; it is served only where a pool runs it.
    async with api_client(api_settings, queue_url) as client:
        listed = (await client.get("/v1/models")).json()["data"]
        assert [m["id"] for m in listed] == [spec.name]
    pools = {"default": PoolSettings(), "vision": PoolSettings(model=vlm.name)}
    settings = api_settings.model_copy(update={"pools": pools})
    async with api_client(settings, queue_url) as client:
        listed = (await client.get("/v1/models")).json()["data"]
        assert sorted(m["id"] for m in listed) == sorted([spec.name, vlm.name])
        await beat(redis_client, "text-worker", spec.name)
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["models"] == {
            spec.name: "serving",
            vlm.name: "waiting for a worker",
        }
        await beat(redis_client, "vision-worker", vlm.name)
        assert (await client.get("/readyz")).status_code == 200


async def beat(client: aioredis.Redis, name: str, model: str) -> None:
    """Register a live worker for ``model`` (one heartbeat)."""
    await heartbeat(client, name, model, Progress(), lambda: Load(0.0, 0), None, lambda: {}).beat()
