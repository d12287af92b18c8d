"""Jobs the API acknowledged survive a SIGKILL of the server (AOF + WAITAOF before the 202)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.connection import connect
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.server import EmbeddedValkey
from queueing.settings import Settings
from tests.api.support import api_client
from tests.conftest import free_port

JOBS = 1000


async def submit_all(client: httpx.AsyncClient) -> list[str]:
    """POST ``JOBS`` jobs, 50 at a time; the ids of those answered 202."""
    gate = asyncio.Semaphore(50)
    classes = list(JobClass)

    async def one(i: int) -> str:
        async with gate:
            reply = await client.post(
                "/v1/jobs", json={"prompt": f"job {i}", "class": classes[i % 3].value}
            )
        assert reply.status_code == 202, reply.text
        return str(reply.json()["id"])

    return await asyncio.gather(*(one(i) for i in range(JOBS)))


async def test_acknowledged_jobs_survive_sigkill(
    tmp_path: Path, settings: Settings, spec: ModelSpec
) -> None:
    server = EmbeddedValkey(tmp_path, free_port(17400)).start()
    try:
        async with api_client(settings, server.url) as client:
            ids = await submit_all(client)
        assert len(set(ids)) == JOBS

        server.kill()
        server.start()

        async with api_client(settings, server.url) as client:
            for job_id in ids:
                reply = await client.get(f"/v1/jobs/{job_id}")
                assert reply.status_code == 200 and reply.json()["status"] == "queued"
        redis = await connect(server.url)
        model = settings.default_model
        partitions = range(settings.queue.partitions_of(model))
        queues = [
            keys.waiting(model, p, c, b) for p in partitions for c in JobClass for b in range(4)
        ]
        assert sum([await redis.zcard(q) for q in queues]) == JOBS
        counters = await JobStore(redis, settings.queue).unit_counters(spec)
        assert counters["arrivals"] == JOBS
        await redis.aclose()
    finally:
        server.stop()
