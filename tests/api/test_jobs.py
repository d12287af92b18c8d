"""Submit, poll, idempotency, cancel and backpressure through the HTTP API."""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.jobstore import JobStore
from queueing.schemas import JobResult, JobStatus, Usage
from queueing.settings import QueueSettings, Settings
from queueing.workqueue import EmitOutcome, WorkQueue
from tests.api.support import api_client
from tests.conftest import PARTITIONS

CHAT = {"messages": [{"role": "user", "content": "Say hi"}], "params": {"max_tokens": 16}}


async def test_submit_poll_and_complete(client: httpx.AsyncClient, worker: WorkQueue) -> None:
    created = await client.post("/v1/jobs", json=CHAT)
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["object"] == "job" and job["status"] == "queued" and job["class"] == "standard"
    assert job["estimated_units"] > 0 and job["model"] == "smollm2-135m-instruct"
    assert created.headers["location"] == f"/v1/jobs/{job['id']}"

    polled = await client.get(created.headers["location"])
    assert polled.status_code == 200 and polled.json()["status"] == "queued"

    [claimed] = await worker.claim(10.0, 1, idle=True)
    assert claimed.id == job["id"]
    assert claimed.record.prompt.endswith("assistant\n"), "the chat template was applied"
    assert claimed.record.stream_tokens, "token events by default"
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "running"
    assert await worker.emit(claimed, [("tokens", '{"text":"Hi"}')]) == EmitOutcome.OWNED
    usage = Usage(prompt_tokens=claimed.record.prompt_tokens, completion_tokens=1, total_tokens=9)
    result = JobResult(text="Hi", finish_reason="stop")
    assert await worker.complete(claimed, JobStatus.SUCCEEDED, result=result, usage=usage) == 1

    done = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "succeeded" and done["result"] == {
        "text": "Hi",
        "finish_reason": "stop",
        "tool_calls": None,
        "logprobs": None,
    }
    assert done["usage"]["completion_tokens"] == 1 and done["finished_at"] >= done["created_at"]


async def test_a_job_may_ask_for_no_token_events(
    client: httpx.AsyncClient, worker: WorkQueue
) -> None:
    created = await client.post("/v1/jobs", json={**CHAT, "stream_tokens": False})
    assert created.status_code == 202, created.text
    [claimed] = await worker.claim(10.0, 1, idle=True)
    assert claimed.id == created.json()["id"] and not claimed.record.stream_tokens
    bad = await client.post("/v1/jobs", json={**CHAT, "stream_tokens": "sometimes"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "stream_tokens"


async def test_idempotency_key_replays_the_original_job(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/jobs", json=CHAT, headers={"Idempotency-Key": "abc"})
    again = await client.post("/v1/jobs", json=CHAT, headers={"Idempotency-Key": "abc"})
    in_body = await client.post("/v1/jobs", json={**CHAT, "idempotency_key": "abc"})
    assert first.status_code == 202 and again.status_code == 200 and in_body.status_code == 200
    assert first.json()["id"] == again.json()["id"] == in_body.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    other = await client.post("/v1/jobs", json=CHAT, headers={"Idempotency-Key": "xyz"})
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
    clash = await client.post(
        "/v1/jobs", json={**CHAT, "idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert clash.status_code == 400 and clash.json()["error"]["param"] == "idempotency_key"


async def test_cancel_before_run_removes_the_entry_and_units(
    client: httpx.AsyncClient, redis_client: aioredis.Redis, spec: ModelSpec, worker: WorkQueue
) -> None:
    job = (await client.post("/v1/jobs", json=CHAT)).json()
    store = JobStore(redis_client, QueueSettings(partitions=PARTITIONS))
    record = await store.get(job["id"], "local")
    assert record.stream is not None and await redis_client.zcard(record.stream) == 1
    assert (await store.unit_counters(spec))["queued"] > 0

    cancelled = await client.delete(f"/v1/jobs/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert await redis_client.zcard(record.stream) == 0
    counters = await store.unit_counters(spec)
    assert counters["queued"] == 0 and counters.get("inflight", 0) == 0
    assert counters[f"n:{keys.queue_field(record.job_class, record.band)}"] == 0
    assert await worker.claim(10.0, 4, idle=True) == []
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "cancelled"


async def test_cancel_while_running_reaches_the_worker(
    client: httpx.AsyncClient, redis_client: aioredis.Redis, spec: ModelSpec, worker: WorkQueue
) -> None:
    job = (await client.post("/v1/jobs", json=CHAT)).json()
    [claimed] = await worker.claim(10.0, 1, idle=True)

    pending = await client.delete(f"/v1/jobs/{job['id']}")
    assert pending.status_code == 200 and pending.json()["status"] == "running"
    store = JobStore(redis_client, QueueSettings(partitions=PARTITIONS))
    assert (await store.get(job["id"], "local")).cancel is True

    assert await worker.emit(claimed, [("tokens", '{"text":"x"}')]) == EmitOutcome.CANCELLED
    assert await worker.complete(claimed, JobStatus.CANCELLED, error="cancelled by the user") == 1
    final = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert final["status"] == "cancelled" and final["error"] == "cancelled by the user"
    counters = await store.unit_counters(spec)
    assert counters["queued"] == 0 and counters["inflight"] == 0


async def test_queue_full_is_429_with_retry_after(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    queue = api_settings.queue.model_copy(update={"max_queued_units": 0.3, "retry_after_s": 7})
    settings = api_settings.model_copy(update={"queue": queue})
    body = {"prompt": "Hello", "params": {"max_tokens": 256}}
    async with api_client(settings, queue_url) as client:
        # The ceiling holds per partition (0.3 / PARTITIONS each); an empty one takes a job.
        for _ in range(PARTITIONS):
            assert (await client.post("/v1/jobs", json=body)).status_code == 202
        refused = await client.post("/v1/jobs", json=body)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "7"
        error = refused.json()["error"]
        assert error["code"] == "queue_full" and error["type"] == "rate_limit_error"
        assert "ceiling" in error["message"]
        metrics = (await client.get("/metrics")).text
    assert 'inferq_api_rejections_total{code="queue_full"} 1.0' in metrics
    counters = await JobStore(redis_client, queue).unit_counters(spec)
    assert counters["n:standard:1"] == PARTITIONS


async def test_what_a_tenant_used_lately_tempers_its_next_estimate(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    queue = api_settings.queue.model_copy(update={"output_share_cache_s": 0.0})
    settings = api_settings.model_copy(update={"queue": queue})
    worker = WorkQueue(redis_client, spec, "test-worker", queue)
    body = {"prompt": "Say hi", "params": {"max_tokens": 1000}}
    async with api_client(settings, queue_url) as client:
        first = (await client.post("/v1/jobs", json=body)).json()
        [claimed] = await worker.claim(10.0, 1, idle=True)
        usage = Usage(prompt_tokens=3, completion_tokens=50, total_tokens=53)
        result = JobResult(text="Hi", finish_reason="stop")
        await worker.complete(claimed, JobStatus.SUCCEEDED, result=result, usage=usage)
        second = (await client.post("/v1/jobs", json=body)).json()
    assert second["estimated_units"] < first["estimated_units"] / 5


async def test_jobs_take_the_openai_sampling_fields(
    client: httpx.AsyncClient, worker: WorkQueue
) -> None:
    params = {
        "max_tokens": 16,
        "presence_penalty": 1.5,
        "frequency_penalty": -0.5,
        "repetition_penalty": 1.2,
        "logit_bias": {"42": -100},
        "logprobs": 2,
        "json_schema": {"type": "object"},
        "seed": 7,
    }
    created = await client.post("/v1/jobs", json={**CHAT, "params": params})
    assert created.status_code == 202, created.text
    [claimed] = await worker.claim(10.0, 1, idle=True)
    assert claimed.record.params.model_dump(include=set(params)) == {
        **params,
        "logit_bias": {"42": -100.0},
    }
    bad = await client.post("/v1/jobs", json={**CHAT, "params": {"presence_penalty": 3}})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "params.presence_penalty"


async def test_a_job_waiting_for_its_images_says_so_and_cancels(
    client: httpx.AsyncClient, redis_client: aioredis.Redis, spec: ModelSpec
) -> None:
    store = JobStore(redis_client, QueueSettings(partitions=PARTITIONS))
    job = (await client.post("/v1/jobs", json=CHAT)).json()
    text = await store.get(job["id"], "local")
    with_image = text.model_copy(
        update={"id": keys.new_job_id(1), "images": ["data:image/png;base64,AAAA"]}
    )
    await store.enqueue(with_image)  # as the API queues a chat with an image part
    polled = (await client.get(f"/v1/jobs/{with_image.id}")).json()
    assert polled["status"] == "queued" and polled["status_detail"] == "preparing images"
    assert (await store.unit_counters(spec))["pre_jobs"] == 1
    cancelled = await client.delete(f"/v1/jobs/{with_image.id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    counters = await store.unit_counters(spec)
    assert counters["pre_jobs"] == 0 and counters["pre_units"] == 0
    assert counters["queued"] == text.estimated_units  # the text job is still queued
