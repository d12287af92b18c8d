"""Rate limits per tenant at the API: 429s, Retry-After, x-ratelimit-* headers, the queue cap."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio as aioredis

from api.app import create_app
from queueing.catalogue import ModelSpec
from queueing.ratelimit import RateLimited, RateLimiter
from queueing.schemas import JobResult, JobStatus
from queueing.settings import Settings, TenantSettings
from queueing.tenancy import TenantLimits
from queueing.workqueue import WorkQueue
from tests.api.support import api_client, serve

ALICE = {"Authorization": "Bearer key-a"}
BOB = {"Authorization": "Bearer key-b"}
KEYS = {"key-a": "alice", "key-b": "bob"}
JOB = {"prompt": "Hello", "params": {"max_tokens": 256}}  # 0.2562 units on SmolLM2
RATE_HEADERS = [
    f"x-ratelimit-{part}-{bucket}"
    for bucket in ("requests", "tokens")
    for part in ("limit", "remaining", "reset")
]


def limited(settings: Settings, **limits: Any) -> Settings:
    """``settings`` with two tenants, both with ``limits`` (each its own buckets)."""
    tenants = TenantSettings(default_limits=TenantLimits(**limits))
    return settings.model_copy(update={"api_keys": KEYS, "tenants": tenants})


def rate(response: httpx.Response, bucket: str) -> tuple[str, str, str]:
    """The limit, remaining and reset headers of one bucket."""
    limit, remaining, reset = (
        response.headers[f"x-ratelimit-{part}-{bucket}"] for part in ("limit", "remaining", "reset")
    )
    return limit, remaining, reset


def refused_as_openai(response: httpx.Response, kind: str) -> None:
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == kind, error
    assert "Please try again in" in error["message"]
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert 0 < int(response.headers["retry-after-ms"]) <= retry_after * 1000


async def jobs_of(redis: aioredis.Redis, tenant: str) -> int:
    found = 0
    async for key in redis.scan_iter("iq:job:*"):
        found += await redis.hget(key, "tenant") == tenant
    return found


async def test_a_tenant_at_its_request_limit_gets_429_and_another_is_unaffected(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    async with api_client(limited(api_settings, requests_per_minute=2), queue_url) as http:
        first = await http.post("/v1/jobs", json=JOB, headers=ALICE)
        second = await http.post("/v1/jobs", json=JOB, headers=ALICE)
        assert first.status_code == second.status_code == 202
        assert rate(first, "requests")[:2] == ("2", "1") and rate(second, "requests")[:2] == (
            "2",
            "0",
        )
        assert "x-ratelimit-limit-tokens" not in first.headers, "no units limit: no header"
        third = await http.post("/v1/jobs", json=JOB, headers=ALICE)
        refused_as_openai(third, "requests")
        assert 25 <= int(third.headers["retry-after"]) <= 30, "one request refills in 30 s"
        assert rate(third, "requests")[1] == "0" and rate(third, "requests")[2].endswith("s")
        assert await jobs_of(redis_client, "alice") == 2, "nothing queued when refused"

        other = await http.post("/v1/jobs", json=JOB, headers=BOB)
        assert other.status_code == 202 and rate(other, "requests")[:2] == ("2", "1")

        # Reading costs nothing and still says where the tenant stands, errors included.
        for path in (first.headers["location"], "/v1/jobs/job_0_nope", "/v1/models", "/v1/files"):
            read = await http.get(path, headers=ALICE)
            assert read.status_code in (200, 404) and rate(read, "requests")[:2] == ("2", "0")
        url = first.headers["location"]
        assert (await http.delete(url, headers=ALICE)).json()["status"] == "cancelled"
        events = await http.get(f"{url}/events", headers=ALICE)  # ends: the job is cancelled
        assert events.status_code == 200 and "cancelled" in events.text
        assert rate(events, "requests")[:2] == ("2", "0")
        metrics = (await http.get("/metrics")).text
        assert 'inferq_api_rejections_total{code="rate_limit_exceeded"} 1.0' in metrics
        health = await http.get("/healthz")
        assert health.status_code == 200 and not any(h in health.headers for h in RATE_HEADERS)


async def test_a_tenant_at_its_units_limit_gets_429_and_another_is_unaffected(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    async with api_client(limited(api_settings, units_per_minute=0.4), queue_url) as http:
        first = await http.post("/v1/jobs", json=JOB, headers=ALICE)
        assert first.status_code == 202
        units = first.json()["estimated_units"]
        assert 0.2 < units < 0.4
        assert rate(first, "tokens")[:2] == ("0.4", "0")
        refused = await http.post("/v1/jobs", json=JOB, headers=ALICE)
        refused_as_openai(refused, "tokens")
        expected_s = (units - (0.4 - units)) / (0.4 / 60)  # the deficit at 0.4 units a minute
        assert expected_s - 5 < int(refused.headers["retry-after-ms"]) / 1000 <= expected_s + 0.01
        assert "x-ratelimit-limit-requests" not in refused.headers
        limit, remaining, reset = rate(refused, "tokens")
        assert (limit, remaining) == ("0.4", "0") and reset.endswith("s")
        assert await jobs_of(redis_client, "alice") == 1
        assert (await http.post("/v1/jobs", json=JOB, headers=BOB)).status_code == 202


async def test_the_queued_units_cap_refuses_until_a_job_ends(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    async with api_client(limited(api_settings, max_queued_units=0.4), queue_url) as http:
        first = await http.post("/v1/jobs", json=JOB, headers=ALICE)
        assert first.status_code == 202
        refused = await http.post("/v1/jobs", json=JOB, headers=ALICE)
        refused_as_openai(refused, "queued_tokens")
        assert refused.headers["retry-after"] == str(api_settings.queue.retry_after_s)
        assert not any(h in refused.headers for h in RATE_HEADERS), "no per-minute limit"
        assert (await http.post("/v1/jobs", json=JOB, headers=BOB)).status_code == 202
        assert (await http.delete(first.headers["location"], headers=ALICE)).status_code == 200
        assert (await http.post("/v1/jobs", json=JOB, headers=ALICE)).status_code == 202


async def test_an_unlimited_tenant_gets_no_rate_headers(
    redis_client: aioredis.Redis, client: httpx.AsyncClient, spec: ModelSpec
) -> None:
    created = await client.post("/v1/jobs", json=JOB)
    assert created.status_code == 202
    assert not any(h in created.headers for h in RATE_HEADERS)


async def test_creating_a_batch_is_one_request(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    line = (
        '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": '
        f'{{"model": "{spec.name}", "messages": [{{"role": "user", "content": "hi"}}]}}}}\n'
    )
    async with api_client(limited(api_settings, requests_per_minute=1), queue_url) as http:
        upload = await http.post(
            "/v1/files",
            headers=ALICE,
            data={"purpose": "batch"},
            files={"file": ("in.jsonl", line.encode(), "application/jsonl")},
        )
        assert upload.status_code == 200 and rate(upload, "requests")[:2] == ("1", "1")
        body = {
            "input_file_id": upload.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        created = await http.post("/v1/batches", json=body, headers=ALICE)
        assert created.status_code == 200 and rate(created, "requests")[:2] == ("1", "0")
        refused_as_openai(await http.post("/v1/batches", json=body, headers=ALICE), "requests")


async def spend(limiter: RateLimiter, limits: TenantLimits, tenant: str) -> None:
    """Spend the tenant's requests bucket down to less than one request (as another API
    process would)."""
    with pytest.raises(RateLimited):
        while True:
            await limiter.charge(tenant, limits, requests=1, units=0)


async def serve_one(worker: WorkQueue, text: str) -> None:
    """Play a worker: claim the next job (waiting as long as it takes) and complete it."""
    while True:
        if jobs := await worker.claim(10.0, 1, idle=True):
            break
        await asyncio.sleep(0.02)
    result = JobResult(text=text, finish_reason="stop")
    assert await worker.complete(jobs[0], JobStatus.SUCCEEDED, result=result) == 1


@pytest.mark.timeout(60)
async def test_the_openai_client_retries_after_retry_after_and_succeeds(
    redis_client: aioredis.Redis,
    queue_url: str,
    api_settings: Settings,
    spec: ModelSpec,
    worker: WorkQueue,
) -> None:
    settings = limited(api_settings, requests_per_minute=20)  # one request every 3 s
    limiter, limits = RateLimiter(redis_client, settings.queue), settings.tenants.default_limits
    seen: list[tuple[float, int, str | None]] = []

    async def record(response: httpx.Response) -> None:
        seen.append(
            (time.monotonic(), response.status_code, response.headers.get("retry-after-ms"))
        )

    async with serve(create_app(settings, queue_url)) as base:
        await spend(limiter, limits, "alice")
        async with openai.AsyncOpenAI(
            base_url=f"{base}/v1", api_key="key-a", max_retries=0, timeout=20
        ) as oai:
            with pytest.raises(openai.RateLimitError) as refused:
                await oai.completions.create(model=spec.name, prompt="Hello", max_tokens=4)
        assert refused.value.code == "rate_limit_exceeded" and refused.value.type == "requests"
        assert refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"
        hooks = {"response": [record]}
        async with (
            httpx.AsyncClient(event_hooks=hooks) as transport,
            openai.AsyncOpenAI(
                base_url=f"{base}/v1",
                api_key="key-a",
                max_retries=1,
                timeout=20,
                http_client=transport,
            ) as oai,
        ):
            worker_task = asyncio.create_task(serve_one(worker, "Hi!"))
            await spend(limiter, limits, "alice")
            reply = await oai.completions.create(model=spec.name, prompt="Hello", max_tokens=4)
            await worker_task
    assert reply.choices[0].text == "Hi!"
    assert [status for _, status, _ in seen] == [429, 200], "one retry, then served"
    waited = seen[1][0] - seen[0][0]
    wait_ms = int(seen[0][2] or 0)
    assert 0 < wait_ms <= 3000 and waited >= wait_ms / 1000 * 0.9, (waited, wait_ms)
