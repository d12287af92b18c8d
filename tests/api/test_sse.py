"""Server-sent events over a real uvicorn server: live delivery, resume, keep-alive, the hub."""

from __future__ import annotations

import asyncio
import json

import httpx
import redis.asyncio as aioredis

from api.app import create_app
from api.events import EventHub
from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.connection import connect
from queueing.jobstore import JobStore
from queueing.schemas import JobResult, JobStatus
from queueing.settings import ApiSettings, Settings
from queueing.workqueue import ClaimedJob, WorkQueue
from tests.api.support import Sse, read_events, serve
from tests.conftest import PARTITIONS
from tests.queueing.listen import kill_subscribers, publish


def tokens(*texts: str) -> list[tuple[str, str]]:
    return [("tokens", json.dumps({"text": t})) for t in texts]


async def stream(
    client: httpx.AsyncClient, url: str, limit: int | None = None, *, resume: str | None = None
) -> list[Sse]:
    headers = {"Last-Event-ID": resume} if resume else {}
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return await read_events(response.aiter_lines(), limit)


async def test_resume_sees_every_event_once_in_order(
    redis_client: aioredis.Redis,
    queue_url: str,
    api_settings: Settings,
    spec: ModelSpec,
    worker: WorkQueue,
) -> None:
    # A long keep-alive: only the hub's notifications can deliver within the test's timeouts.
    settings = api_settings.model_copy(update={"api": ApiSettings(sse_ping_s=60)})
    async with (
        serve(create_app(settings, queue_url)) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        job_id = (await client.post("/v1/jobs", json={"prompt": "Tell me"})).json()["id"]
        url = f"/v1/jobs/{job_id}/events"
        [job] = await worker.claim(10.0, 1, idle=True)
        await worker.emit(job, tokens("a", "b"))

        first = await stream(client, url, limit=3)  # queued, running, "a"; then hang up
        await worker.emit(job, tokens("c"))
        await worker.emit(job, tokens("d"))  # produced while nobody listens

        async def finish_later(job: ClaimedJob) -> None:
            await asyncio.sleep(0.3)  # after the client has caught up and waits
            await worker.emit(job, tokens("e"))
            await worker.complete(job, JobStatus.SUCCEEDED, result=JobResult(text="abcde"))

        finisher = asyncio.create_task(finish_later(job))
        async with asyncio.timeout(5):
            rest = await stream(client, url, resume=first[-1].id)
            await finisher

        everything = await JobStore(redis_client, api_settings.queue).events(job_id)
        seen = first + rest
        assert [e.id for e in seen] == [e.id for e in everything], "each event exactly once"
        assert [e.event for e in seen] == ["status", "status"] + ["tokens"] * 5 + [
            "result",
            "status",
        ]
        assert "".join(e.json()["text"] for e in seen if e.event == "tokens") == "abcde"
        assert seen[-1].terminal and seen[-1].json() == {"status": "succeeded"}

        # Resuming by query parameter; and after the end, the stream closes at once.
        tail = await stream(client, f"{url}?last_event_id={seen[-3].id}")
        assert [e.event for e in tail] == ["result", "status"]
        assert await stream(client, url, resume=seen[-1].id) == []
        await asyncio.sleep(0.1)
        assert "inferq_sse_clients 0.0" in (await client.get("/metrics")).text


async def test_keep_alive_comments_while_nothing_happens(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    async with (
        serve(create_app(api_settings, queue_url)) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        job_id = (await client.post("/v1/jobs", json={"prompt": "hi"})).json()["id"]
        async with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            lines = response.aiter_lines()
            comments: list[str] = []
            async with asyncio.timeout(api_settings.api.sse_ping_s * 3):
                async for line in lines:
                    if line.startswith(":"):
                        comments.append(line)
                        break
            assert comments and "ping" in comments[0]
            assert "inferq_sse_clients 1.0" in (await client.get("/metrics")).text


async def test_hub_wakes_only_its_job_and_survives_a_dropped_subscription(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    client = await connect(queue_url)
    hub = EventHub(client, PARTITIONS, retry_s=0.05)
    await hub.start()
    job_1, job_2 = keys.new_job_id(1), keys.new_job_id(2)
    channel_1, channel_2 = keys.events_channel(1), keys.events_channel(2)
    try:
        with hub.waiter(job_1) as one, hub.waiter(job_2) as two:
            assert hub.waiting == 2
            await publish(redis_client, channel_1, job_1)
            await asyncio.wait_for(one.wait(), 2)
            assert not two.is_set(), "a notification wakes only its own job's waiters"

            one.clear()
            assert await kill_subscribers(redis_client) >= 1
            # After resubscribing the hub wakes everyone: they re-read what they missed.
            await asyncio.wait_for(asyncio.gather(one.wait(), two.wait()), 5)
            assert hub.connected
            one.clear()
            two.clear()
            await publish(redis_client, channel_2, job_2)
            await asyncio.wait_for(two.wait(), 2)
            assert not one.is_set()
        assert hub.waiting == 0
    finally:
        await hub.stop()
        await client.aclose()
