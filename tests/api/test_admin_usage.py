"""``GET /admin/usage`` and the usage counters in ``/metrics``: per tenant and model, from
jobs that really went through the queue and a worker."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.schemas import JobStatus, Usage
from queueing.settings import Settings
from queueing.workqueue import WorkQueue
from tests.api.support import api_client
from tests.api.tenancy import ADMIN, bearer, new_tenant, with_tenants
from tests.queueing.records import claim_all

JOB = {"prompt": "Say hello", "params": {"max_tokens": 8}}


async def test_usage_per_tenant_and_model_through_the_api(
    redis_client: aioredis.Redis,
    queue_url: str,
    api_settings: Settings,
    spec: ModelSpec,
    worker: WorkQueue,
) -> None:
    async with api_client(with_tenants(api_settings), queue_url) as client:
        alice = bearer(await new_tenant(client, "alice"))
        bob = bearer(await new_tenant(client, "bob"))
        units = {"alice": 0.0, "bob": 0.0}
        for who, headers, count in [("alice", alice, 2), ("bob", bob, 2)]:
            for _ in range(count):
                job = (await client.post("/v1/jobs", json=JOB, headers=headers)).json()
                units[who] += job["estimated_units"]
                last = job
        cancelled = await client.delete(f"/v1/jobs/{last['id']}", headers=bob)  # bob's second
        assert cancelled.json()["status"] == "cancelled"
        units["bob"] -= last["estimated_units"]
        held = await claim_all(worker, 100.0, 10)
        assert len(held) == 3
        for job in held:
            used = Usage(prompt_tokens=job.record.prompt_tokens, completion_tokens=8)
            await worker.complete(job, JobStatus.SUCCEEDED, usage=used)
        prompt = held[0].record.prompt_tokens

        answer = (await client.get("/admin/usage", headers=ADMIN)).json()
        assert answer["until"] - answer["since"] == 24 * 3600
        rows = {row["tenant"]: row for row in answer["data"]}
        assert set(rows) == {"alice", "bob"}
        assert rows["alice"]["model"] == spec.name
        assert abs(rows["alice"]["units"] - units["alice"]) < 1e-6
        assert abs(rows["bob"]["units"] - units["bob"]) < 1e-6
        assert rows["alice"]["requests"] == {"succeeded": 2, "failed": 0, "cancelled": 0}
        assert rows["bob"]["requests"] == {"succeeded": 1, "failed": 0, "cancelled": 1}
        assert (rows["alice"]["prompt_tokens"], rows["alice"]["completion_tokens"]) == (
            2 * prompt,
            16,
        )

        only = await client.get("/admin/usage", params={"tenant": "bob"}, headers=ADMIN)
        assert [row["tenant"] for row in only.json()["data"]] == ["bob"]
        later = await client.get(
            "/admin/usage", params={"since": time.time() + 7200}, headers=ADMIN
        )
        assert later.json()["data"] == []
        bad = await client.get("/admin/usage", params={"since": "yesterday"}, headers=ADMIN)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"
        assert (await client.get("/admin/usage", headers=alice)).status_code == 403

        metrics = (await client.get("/metrics")).text
        labels = f'model="{spec.name}",tenant="alice"'
        assert f"inferq_tenant_units_total{{{labels}}} {units['alice']}" in metrics
        bob_cancelled = f'model="{spec.name}",outcome="cancelled",tenant="bob"'
        assert f"inferq_tenant_requests_total{{{bob_cancelled}}} 1.0" in metrics
        assert f'inferq_tenant_tokens_total{{kind="completion",{labels}}} 16.0' in metrics
