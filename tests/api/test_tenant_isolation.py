"""Tenants made through the registry see only their own jobs, files and batches: another's
are 404 to read, stream, cancel or use, and absent from lists."""

from __future__ import annotations

import redis.asyncio as aioredis

from queueing.catalogue import ModelSpec
from queueing.settings import Settings
from tests.api.support import api_client
from tests.api.tenancy import bearer, new_tenant, with_tenants

LINE = b'{"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'


async def test_one_tenant_cannot_reach_anothers_jobs_files_or_batches(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    async with api_client(with_tenants(api_settings), queue_url) as client:
        alice = bearer(await new_tenant(client, "alice"))
        bob = bearer(await new_tenant(client, "bob"))
        job = await client.post("/v1/jobs", json={"prompt": "hi"}, headers=alice)
        job_url = job.headers["location"]
        upload = await client.post(
            "/v1/files",
            files={"file": ("in.jsonl", LINE)},
            data={"purpose": "batch"},
            headers=alice,
        )
        file_id = upload.json()["id"]
        batch = await client.post(
            "/v1/batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
            headers=alice,
        )
        batch_id = batch.json()["id"]
        assert (job.status_code, upload.status_code, batch.status_code) == (202, 200, 200)

        attempts = [
            ("GET", job_url, None),
            ("GET", f"{job_url}/events", None),
            ("DELETE", job_url, None),
            ("GET", f"/v1/files/{file_id}", None),
            ("GET", f"/v1/files/{file_id}/content", None),
            ("DELETE", f"/v1/files/{file_id}", None),
            ("GET", f"/v1/batches/{batch_id}", None),
            ("POST", f"/v1/batches/{batch_id}/cancel", None),
            (
                "POST",
                "/v1/batches",
                {
                    "input_file_id": file_id,
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            ),
        ]
        for method, url, body in attempts:
            response = await client.request(method, url, json=body, headers=bob)
            assert response.status_code == 404, (method, url, response.text)
            assert response.json()["error"]["code"].endswith("_not_found"), (method, url)
        assert (await client.get("/v1/files", headers=bob)).json()["data"] == []
        assert (await client.get("/v1/batches", headers=bob)).json()["data"] == []

        # Alice's things are untouched by Bob's attempts.
        assert (await client.get(job_url, headers=alice)).json()["status"] == "queued"
        assert (await client.get(f"/v1/files/{file_id}", headers=alice)).status_code == 200
        mine = (await client.get("/v1/batches", headers=alice)).json()["data"]
        assert [b["id"] for b in mine] == [batch_id] and mine[0]["status"] == "validating"
        files = (await client.get("/v1/files", headers=alice)).json()["data"]
        assert [f["id"] for f in files] == [file_id]
