"""The worker's Prometheus endpoint: found through its heartbeat entry, fed by the loop."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from queueing import keys
from queueing.jobstore import JobStore
from queueing.schemas import JobStatus
from queueing.settings import QueueSettings
from tests.conftest import free_port
from tests.workers.support import FAST, job, running_worker, status_is, wait_until
from workers.engines.scripted import ScriptedEngine
from workers.heartbeat import Load, Progress
from workers.metrics import WorkerMetrics
from workers.steps import StepClock


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a text exposition."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(url)
    assert response.status_code == 200
    return response.text


async def test_scraped_counters_follow_the_jobs_the_worker_ran(
    redis_client: aioredis.Redis, queue_url: str, queue_settings: QueueSettings
) -> None:
    store = JobStore(redis_client, queue_settings)
    engine = ScriptedEngine(token_delay_s=0.005, fail_times=1)
    async with running_worker(queue_url, engine, queue_settings) as worker:

        async def entry() -> dict[str, str]:
            raw = await redis_client.hget(keys.WORKERS, worker.consumer)
            return json.loads(raw) if raw else {}

        async def published() -> bool:
            return bool((await entry()).get("metrics_url"))

        await wait_until(published, 5, "a heartbeat with the metrics URL")
        url = (await entry())["metrics_url"]
        assert url == worker.metrics.url and url.startswith("http://127.0.0.1:")
        before = await scrape(url)
        assert sample(before, "inferq_worker_output_tokens_total", model="m") == 0
        assert sample(before, "inferq_worker_unit_budget", model="m") == FAST.unit_budget

        long = job("slow one", max_tokens=2_000, units=0.3)
        await store.enqueue(long)
        await wait_until(lambda: status_is(store, long.id, JobStatus.RUNNING), 5, "running")
        busy = await scrape(url)
        assert sample(busy, "inferq_worker_inflight_jobs", model="m") == 1
        assert sample(busy, "inferq_worker_inflight_units", model="m") == 0.3
        await store.cancel(long.id, "local")

        others = [job("plain words"), job("[fail] now"), job("[retry] once")]
        for record in others:
            await store.enqueue(record)
        records = [long, *others]

        async def all_final() -> bool:
            done = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
            return all([await status_is(store, r.id, *done) for r in records])

        await wait_until(all_final, 10, "every job final")
        finals = [await store.get(r.id, "local") for r in records]
        after = await scrape(url)

    tokens = sum(f.usage.completion_tokens for f in finals if f.usage is not None)
    assert tokens >= 12, "two jobs of six tokens succeeded, and the long one ran a while"
    assert sample(after, "inferq_worker_output_tokens_total", model="m") == tokens
    assert sample(after, "inferq_worker_inflight_jobs", model="m") == 0
    outcomes = {"succeeded": 2, "failed": 1, "cancelled": 1, "released": 1}
    for outcome, count in outcomes.items():
        name = "inferq_worker_jobs_finished_total"
        assert sample(after, name, model="m", outcome=outcome) == count, outcome
    assert "_created" not in after, "no duplicate _created series"
    assert await redis_client.hget(keys.WORKERS, worker.consumer) is None
    with pytest.raises(httpx.ConnectError):
        await scrape(url)


async def test_token_rate_is_recent_and_gauges_read_the_load_at_scrape_time() -> None:
    progress = Progress(window_s=0.2)
    steps = StepClock()
    stalled = [False]
    metrics = WorkerMetrics("m", progress, lambda: Load(0.5, 2), 4.0, steps, lambda: stalled[0])
    progress.note(50)
    for busy in (True, True, False):
        steps.step(busy_after=busy)
    await asyncio.sleep(0.05)
    rate = metrics.registry.get_sample_value("inferq_worker_tokens_per_second", {"model": "m"})
    assert rate is not None and 50 / 1.0 < rate <= 50 / 0.05
    await asyncio.sleep(0.3)
    idle = metrics.registry.get_sample_value("inferq_worker_tokens_per_second", {"model": "m"})
    assert idle == 0, "no tokens within the window: the rate drops to zero"
    for name, value in [
        ("inferq_worker_inflight_units", 0.5),
        ("inferq_worker_inflight_jobs", 2),
        ("inferq_worker_unit_budget", 4.0),
        ("inferq_worker_output_tokens_total", 50),
        ("inferq_worker_engine_steps_total", 3),
        ("inferq_worker_step_seconds", steps.pace_s()),
        ("inferq_worker_stalled", 0),
    ]:
        assert metrics.registry.get_sample_value(name, {"model": "m"}) == value, name
    stalled[0] = True
    assert metrics.registry.get_sample_value("inferq_worker_stalled", {"model": "m"}) == 1


async def test_served_on_the_configured_port_and_named_by_hostname_on_a_wildcard_bind() -> None:
    progress = Progress()
    metrics = WorkerMetrics("m", progress, lambda: Load(0.0, 0), 1.0, StepClock(), lambda: False)
    port = free_port(19000)
    url = await asyncio.to_thread(metrics.start, "127.0.0.1", port)
    try:
        assert url == f"http://127.0.0.1:{port}/metrics"
        assert "inferq_worker_unit_budget" in await scrape(url)
    finally:
        await asyncio.to_thread(metrics.stop)
    wildcard = WorkerMetrics("m", progress, lambda: Load(0.0, 0), 1.0, StepClock(), bool)
    url = await asyncio.to_thread(wildcard.start, "0.0.0.0", 0)
    try:
        assert url.startswith(f"http://{socket.gethostname()}:")
        port = int(url.rsplit(":", 1)[1].removesuffix("/metrics"))
        assert "inferq_worker_unit_budget" in await scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        await asyncio.to_thread(wildcard.stop)
