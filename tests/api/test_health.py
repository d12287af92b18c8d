"""Liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.server import EmbeddedValkey
from queueing.settings import Settings
from queueing.workqueue import WorkQueue
from tests.api.support import api_client
from tests.conftest import free_port


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"redis": True, "events": True, "catalogue": True},
    }


async def test_not_ready_without_model_files(
    redis_client: aioredis.Redis, valkey: EmbeddedValkey, api_settings: Settings, tmp_path: Path
) -> None:
    settings = api_settings.model_copy(update={"models_dir": tmp_path})
    async with api_client(settings, valkey.url) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["catalogue"] is False
        assert (await client.get("/healthz")).status_code == 200


async def test_not_ready_when_the_queue_server_is_gone(
    api_settings: Settings, tmp_path: Path, spec: ModelSpec
) -> None:
    server = EmbeddedValkey(tmp_path, free_port(17000)).start()
    try:
        async with api_client(api_settings, server.url) as client:
            assert (await client.get("/readyz")).status_code == 200
            server.stop()
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"] is False
            lookup = await client.get("/v1/jobs/job_x")
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

    await worker.claim(100.0, 10, idle=True)
    lines = (await client.get("/metrics")).text.splitlines()
    assert sample(lines, f'inferq_queued_units{{model="{name}"}}') == 0
    assert sample(lines, f'inferq_inflight_units{{model="{name}"}}') > 0.5


def sample(lines: list[str], series: str) -> float:
    """The value of one series in a scrape."""
    return float(next(line for line in lines if line.startswith(f"{series} ")).split()[-1])
