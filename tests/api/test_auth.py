"""API keys map to tenants; tenants see only their own jobs; open binds need keys."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from api.app import UnsafeBind, check_bind
from queueing.catalogue import ModelSpec
from queueing.settings import ApiSettings, Settings
from tests.api.support import api_client

ALICE = {"Authorization": "Bearer key-a"}
BOB = {"Authorization": "Bearer key-b"}


async def test_tenants_are_isolated(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    settings = api_settings.model_copy(update={"api_keys": {"key-a": "alice", "key-b": "bob"}})
    async with api_client(settings, queue_url) as client:
        created = await client.post("/v1/jobs", json={"prompt": "hi"}, headers=ALICE)
        assert created.status_code == 202
        url = created.headers["location"]
        assert (await client.get(url, headers=ALICE)).json()["status"] == "queued"

        for method, path in [("GET", url), ("DELETE", url), ("GET", f"{url}/events")]:
            response = await client.request(method, path, headers=BOB)
            assert response.status_code == 404, (method, path)
            assert response.json()["error"]["code"] == "job_not_found"
        assert (await client.get(url, headers=ALICE)).json()["status"] == "queued"

        for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic a2V5LWE="}]:
            refused = await client.get(url, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["code"] == "invalid_api_key"
            assert refused.headers["www-authenticate"] == "Bearer"
        assert (await client.post("/v1/jobs", json={"prompt": "hi"})).status_code == 401
    # The same idempotency key in two tenants names two different jobs.
    async with api_client(settings, queue_url) as client:
        a = await client.post(
            "/v1/jobs", json={"prompt": "x", "idempotency_key": "k"}, headers=ALICE
        )
        b = await client.post("/v1/jobs", json={"prompt": "x", "idempotency_key": "k"}, headers=BOB)
        assert a.status_code == b.status_code == 202 and a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "api.example.com"])
def test_open_bind_without_keys_is_refused(host: str) -> None:
    with pytest.raises(UnsafeBind, match="INFERQ_API_KEYS"):
        check_bind(Settings(api=ApiSettings(host=host), api_keys={}))
    check_bind(Settings(api=ApiSettings(host=host), api_keys={"k": "t"}))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
def test_loopback_bind_needs_no_keys(host: str) -> None:
    check_bind(Settings(api=ApiSettings(host=host), api_keys={}))
