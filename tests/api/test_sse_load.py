"""1,000 concurrent SSE clients on one API process (a subprocess, so its RSS is measurable)."""

from __future__ import annotations

import asyncio
import json
import resource
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.schemas import JobResult, JobStatus
from queueing.workqueue import ClaimedJob, WorkQueue
from tests.api.support import api_process
from tests.queueing.records import claim_all

CLIENTS = 1_000
# Measured: 42-53 MiB of growth for 1,000 clients (about 50 KiB each); bound with ~2x margin.
RSS_GROWTH_BOUND_MIB = 100
MiB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def api(queue_url: str, spec: ModelSpec, tmp_path: Path) -> Iterator[tuple[int, str]]:
    """``python -m api`` with room for every client's connection; yields its pid and URL."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * CLIENTS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * CLIENTS), hard))
    with api_process(queue_url, tmp_path / "api.log", {"INFERQ_API__SSE_PING_S": "30"}) as proc:
        yield proc


async def listen(port: int, job_id: str, subscribed: asyncio.Event, ready: list[int]) -> bytes:
    """A bare-bones SSE client: read until the server closes the finished stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: api\r\n"
            "Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        first = await reader.readuntil(b'"queued"')
        ready.append(1)
        if len(ready) == CLIENTS:
            subscribed.set()
        return first + await reader.read()
    finally:
        writer.close()


async def run_worker(worker: WorkQueue) -> int:
    """Claim every job and finish each with a result naming it; returns how many."""
    claimed = await claim_all(worker, 1e6, CLIENTS)

    async def finish(job: ClaimedJob) -> None:
        await worker.emit(job, [("tokens", json.dumps({"text": "done "}))])
        result = JobResult(text=f"done {job.id}", finish_reason="stop")
        assert await worker.complete(job, JobStatus.SUCCEEDED, result=result) == 1

    for start in range(0, len(claimed), 100):
        await asyncio.gather(*(finish(job) for job in claimed[start : start + 100]))
    return len(claimed)


async def test_thousand_sse_clients_in_one_process(
    redis_client: aioredis.Redis,
    api: tuple[int, str],
    worker: WorkQueue,
    record_property: Callable[[str, object], None],
) -> None:
    pid, base = api
    port = int(base.rsplit(":", 1)[1])
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(16)

        async def submit(i: int) -> str:
            async with gate:
                body = {"prompt": f"job {i}", "params": {"max_tokens": 8}}
                response = await client.post("/v1/jobs", json=body)
                assert response.status_code == 202, response.text
                job_id: str = response.json()["id"]
                return job_id

        ids = await asyncio.gather(*(submit(i) for i in range(CLIENTS)))
        baseline = rss_bytes(pid)

        peak = baseline
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, rss_bytes(pid))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        subscribed, ready = asyncio.Event(), list[int]()
        clients = [asyncio.create_task(listen(port, job_id, subscribed, ready)) for job_id in ids]
        await asyncio.wait_for(subscribed.wait(), 30)
        connected = rss_bytes(pid)
        gauge = (await client.get("/metrics")).text
        assert f"inferq_sse_clients {CLIENTS:.1f}" in gauge

        assert await run_worker(worker) == CLIENTS
        bodies = await asyncio.wait_for(asyncio.gather(*clients), 30)
        sampling = False
        await sampler
        after = (await client.get("/metrics")).text

    for job_id, body in zip(ids, bodies, strict=True):
        text = body.decode()
        assert text.index("event: tokens") < text.index("event: result")
        assert f"done {job_id}" in text, "each client gets its own job's result"
        last = text[text.rindex("event: ") :]
        assert last.startswith("event: status") and '{"status":"succeeded"}' in last, last
    assert "inferq_sse_clients 0.0" in after

    growth = (peak - baseline) / MiB
    record_property("sse_clients", CLIENTS)
    record_property("api_rss_baseline_mib", round(baseline / MiB, 1))
    record_property("api_rss_growth_mib", round(growth, 1))
    print(
        f"\n{CLIENTS} SSE clients: API RSS {baseline / MiB:.1f} MiB before, "
        f"{connected / MiB:.1f} MiB connected, peak growth {growth:.1f} MiB"
    )
    assert growth < RSS_GROWTH_BOUND_MIB
