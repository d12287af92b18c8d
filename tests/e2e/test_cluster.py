"""End to end through the cluster: a real-engine job, its SSE stream resumed with
``Last-Event-ID``, and a cancel that reaches the engine."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from queueing.cluster import EmbeddedCluster
from queueing.schemas import JobStatus
from tests.api.support import read_events
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def queue_url(valkey_cluster: EmbeddedCluster) -> str:
    """These tests run on the 3-primary cluster."""
    return valkey_cluster.url


async def test_a_job_streams_and_resumes_through_the_cluster(stack: Stack) -> None:
    question = [{"role": "user", "content": "What is the capital of France?"}]
    body = {"messages": question, "params": {"max_tokens": 24}}
    async with httpx.AsyncClient(base_url=stack.url, timeout=120) as http:
        job_id = (await http.post("/v1/jobs", json=body)).json()["id"]
        async with http.stream("GET", f"/v1/jobs/{job_id}/events") as first:
            everything = await read_events(first.aiter_lines())
        assert everything[-1].terminal and everything[-1].json()["status"] == "succeeded"
        streamed = "".join(e.json()["text"] for e in everything if e.event == "tokens")
        final = (await http.get(f"/v1/jobs/{job_id}")).json()
        assert "Paris" in streamed and final["result"]["text"] == streamed
        cut = everything[2]
        headers = {"Last-Event-ID": cut.id}
        async with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as again:
            resumed = await read_events(again.aiter_lines())
    assert [e.id for e in resumed] == [e.id for e in everything[3:]]
    assert resumed[-1].terminal


async def test_a_cancel_reaches_the_engine_through_the_cluster(stack: Stack) -> None:
    body = {
        "prompt": "Write a very long story about a dragon who learns to cook.",
        "params": {"max_tokens": 1500},
        "class": "interactive",
    }
    async with httpx.AsyncClient(base_url=stack.url) as http:
        job_id = (await http.post("/v1/jobs", json=body)).json()["id"]
        deadline = time.monotonic() + 60
        while stack.engine.running() == 0:
            assert time.monotonic() < deadline, "the job never reached the engine"
            await asyncio.sleep(0.05)
        cancelled_at = time.monotonic()
        reply = await http.delete(f"/v1/jobs/{job_id}")
        assert json.loads(reply.text)["status"] in {"running", "cancelled"}
        while stack.engine.running() > 0:
            assert time.monotonic() - cancelled_at < 1.0, "the engine still runs the request"
            await asyncio.sleep(0.02)
    deadline = time.monotonic() + 10
    while (await stack.store.get(job_id, "local")).status != JobStatus.CANCELLED:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
