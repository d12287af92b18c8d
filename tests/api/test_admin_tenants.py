"""``/admin/tenants``: guarded by the admin key; keys shown once, rotated, revoked; tenants
disabled; reservations checked against capacity; revocation felt within the cache time."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
import redis.asyncio as aioredis

from api.app import UnsafeTenants, check_bind, create_app
from api.deps import TenantLimitsDep
from queueing import keys
from queueing.catalogue import ModelSpec
from queueing.settings import ApiSettings, Settings, TenantSettings
from queueing.tenancy import TenantLimits
from tests.api.support import api_client, serve
from tests.api.tenancy import ADMIN, bearer, new_tenant, with_tenants
from tests.queueing.dump import server_text

JOB = {"prompt": "hi", "params": {"max_tokens": 4}}


async def test_admin_routes_need_the_admin_key(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    async with api_client(api_settings, queue_url) as client:  # no admin key: no routes
        assert (await client.get("/admin/tenants", headers=ADMIN)).status_code == 404
    async with api_client(with_tenants(api_settings), queue_url) as client:
        missing = await client.get("/admin/tenants")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        key = await new_tenant(client, "acme")
        for headers in [bearer(key), bearer("nope")]:
            refused = await client.get("/admin/tenants", headers=headers)
            assert refused.status_code == 403
            assert refused.json()["error"] == {
                "message": "This key may not use the admin API",
                "type": "invalid_request_error",
                "param": None,
                "code": "permission_denied",
            }
    with pytest.raises(UnsafeTenants, match="KEY_SECRET"):
        create_app(
            api_settings.model_copy(update={"tenants": TenantSettings(admin_key="a")}), queue_url
        )


async def test_a_tenant_lives_through_rotation_revocation_and_disabling(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    settings = with_tenants(api_settings).model_copy(update={"api_keys": {"static": "ops"}})
    async with api_client(settings, queue_url) as client:
        created = await client.post(
            "/admin/tenants",
            json={"id": "acme", "name": "Acme", "limits": {"requests_per_minute": 100}},
            headers=ADMIN,
        )
        assert created.status_code == 201
        first = created.json()["api_key"]
        tenant = created.json()["tenant"]
        assert tenant["limits"]["requests_per_minute"] == 100 and len(tenant["keys"]) == 1
        job = await client.post("/v1/jobs", json=JOB, headers=bearer(first))
        assert job.status_code == 202
        assert (await client.get(job.headers["location"], headers=bearer(first))).status_code == 200
        assert (
            await client.post("/v1/jobs", json=JOB, headers=bearer("static"))
        ).status_code == 202

        shown = await client.get("/admin/tenants/acme", headers=ADMIN)
        assert first not in shown.text and "digest" not in shown.text
        listed = (await client.get("/admin/tenants", headers=ADMIN)).json()["data"]
        assert [t["id"] for t in listed] == ["acme"]

        rotated = await client.post("/admin/tenants/acme/keys", json={}, headers=ADMIN)
        assert rotated.status_code == 201
        second, second_id = rotated.json()["api_key"], rotated.json()["id"]
        assert (await client.get("/v1/models", headers=bearer(first))).status_code == 401
        assert (await client.get("/v1/models", headers=bearer(second))).status_code == 200

        revoked = await client.delete(f"/admin/tenants/acme/keys/{second_id}", headers=ADMIN)
        assert revoked.status_code == 200 and revoked.json()["keys"] == []
        assert (await client.get("/v1/models", headers=bearer(second))).status_code == 401
        again = await client.delete(f"/admin/tenants/acme/keys/{second_id}", headers=ADMIN)
        assert again.status_code == 404 and again.json()["error"]["code"] == "api_key_not_found"

        third = (await client.post("/admin/tenants/acme/keys", headers=ADMIN)).json()["api_key"]
        patch = await client.patch("/admin/tenants/acme", json={"disabled": True}, headers=ADMIN)
        assert patch.status_code == 200 and patch.json()["disabled"]
        refused = await client.get("/v1/models", headers=bearer(third))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "tenant_disabled"
        await client.patch("/admin/tenants/acme", json={"disabled": False}, headers=ADMIN)
        assert (await client.get("/v1/models", headers=bearer(third))).status_code == 200

        for taken in ["acme", "local", "ops"]:
            clash = await client.post("/admin/tenants", json={"id": taken}, headers=ADMIN)
            assert clash.status_code == 409 and clash.json()["error"]["code"] == "tenant_exists"
        bad = await client.post(
            "/admin/tenants", json={"limits": {"requests_per_minute": 0}}, headers=ADMIN
        )
        assert bad.status_code == 422 and "requests_per_minute" in bad.json()["error"]["message"]
        missing = await client.get("/admin/tenants/nobody", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "tenant_not_found"
        generated = await client.post("/admin/tenants", json={"name": "anon"}, headers=ADMIN)
        assert generated.json()["tenant"]["id"].startswith("tn_")


async def test_reservations_need_a_calibration_and_must_fit_the_pools(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    async with api_client(with_tenants(api_settings), queue_url) as client:
        body = {"id": "r1", "share": {"reserved": {spec.name: 2.0}}}
        refused = await client.post("/admin/tenants", json=body, headers=ADMIN)
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "reservation_exceeds_capacity"
        assert "no calibration" in error["message"] and error["param"] == "share.reserved"
        calibration = {"units_per_s": 3.0, "unit_budget": 2.0}
        await redis_client.hset(keys.capacity(spec.name), "cpu", json.dumps(calibration))
        assert (await client.post("/admin/tenants", json=body, headers=ADMIN)).status_code == 201
        body = {"id": "r2", "share": {"reserved": {spec.name: 1.5}}}
        over = await client.post("/admin/tenants", json=body, headers=ADMIN)
        assert over.status_code == 409
        assert over.json()["error"]["message"] == (
            f"reserving 1.5 units/s of {spec.name} would exceed its capacity: other tenants "
            "reserve 2 of the 3 units/s its pools can serve (calibrated units/s x max replicas)"
        )
        body["share"] = {"reserved": {spec.name: 1.0}}
        assert (await client.post("/admin/tenants", json=body, headers=ADMIN)).status_code == 201
        unknown = await client.patch(
            "/admin/tenants/r2", json={"share": {"reserved": {"nope": 1}}}, headers=ADMIN
        )
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
        shares = await redis_client.hgetall(keys.TENANT_SHARES)
        assert {t: json.loads(s)["reserved"] for t, s in shares.items()} == {
            "r1": {spec.name: 2.0},
            "r2": {spec.name: 1.0},
        }


async def test_keys_are_never_stored_or_logged_in_the_clear(
    redis_client: aioredis.Redis,
    queue_url: str,
    api_settings: Settings,
    spec: ModelSpec,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with api_client(with_tenants(api_settings), queue_url) as client:
        first = await new_tenant(client, "acme")
        rotated = await client.post("/admin/tenants/acme/keys", json={"grace_s": 60}, headers=ADMIN)
        second = rotated.json()["api_key"]
        for key in (first, second):
            assert (await client.post("/v1/jobs", json=JOB, headers=bearer(key))).status_code == 202
        assert (await client.get("/v1/models", headers=bearer(first + "x"))).status_code == 401
    stored = await server_text(redis_client)
    assert "acme" in stored  # the scan does see the registry
    for key in (first, second):
        assert key not in stored and key.removeprefix("iq-") not in stored
        assert key not in caplog.text
    assert caplog.records  # the capture did see the app's logging


async def test_the_caller_limits_are_its_tenants_or_the_defaults(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    defaults = {"requests_per_minute": 7}
    settings = with_tenants(api_settings, default_limits=defaults)
    settings = settings.model_copy(update={"api_keys": {"static": "ops"}})
    app = create_app(settings, queue_url)

    @app.get("/test/limits")
    def limits(given: TenantLimitsDep) -> TenantLimits:
        return given

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            own = await new_tenant(client, "own", limits={"units_per_minute": 60})
            plain = await new_tenant(client, "plain")
            for key, expected in [
                (own, {"requests_per_minute": 7, "units_per_minute": 60.0}),
                (plain, defaults),
                ("static", defaults),
            ]:
                got = (await client.get("/test/limits", headers=bearer(key))).json()
                assert {k: v for k, v in got.items() if v is not None} == expected, key


async def test_a_revoked_key_is_refused_within_the_cache_time(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    cache_s = 1.0
    settings = with_tenants(api_settings, cache_s=cache_s)
    async with (
        serve(create_app(settings, queue_url)) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        key = await new_tenant(client, "acme")
        key_id = (await client.get("/admin/tenants/acme", headers=ADMIN)).json()["keys"][0]["id"]
        for action in ["disable", "revoke"]:
            assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200
            started = time.monotonic()
            if action == "disable":
                await client.patch("/admin/tenants/acme", json={"disabled": True}, headers=ADMIN)
            else:
                await client.delete(f"/admin/tenants/acme/keys/{key_id}", headers=ADMIN)
            while (await client.get("/v1/models", headers=bearer(key))).status_code == 200:
                assert time.monotonic() - started < cache_s + 0.5, f"{action}: still served"
                await asyncio.sleep(0.05)
            refused_after = time.monotonic() - started
            expected = 403 if action == "disable" else 401
            assert (await client.get("/v1/models", headers=bearer(key))).status_code == expected
            print(f"{action}: refused after {refused_after:.2f} s (cache {cache_s} s)")
            await client.patch("/admin/tenants/acme", json={"disabled": False}, headers=ADMIN)
            await asyncio.sleep(cache_s)


async def test_with_the_registry_on_every_request_needs_a_key(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    settings = with_tenants(api_settings, admin_key=None)
    check_bind(settings.model_copy(update={"api": ApiSettings(host="0.0.0.0")}))
    async with api_client(settings, queue_url) as client:
        refused = await client.post("/v1/jobs", json=JOB)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert (await client.get("/admin/tenants", headers=ADMIN)).status_code == 404


async def test_a_rotated_key_ends_with_its_grace_even_when_cached(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> None:
    """A lookup made after the rotation knows the grace's end; one made before learns it
    within the cache time, like any change."""
    async with api_client(with_tenants(api_settings, cache_s=60), queue_url) as client:
        old = await new_tenant(client, "acme")
        await client.post("/admin/tenants/acme/keys", json={"grace_s": 0.5}, headers=ADMIN)
        assert (await client.get("/v1/models", headers=bearer(old))).status_code == 200
        await asyncio.sleep(0.6)
        assert (await client.get("/v1/models", headers=bearer(old))).status_code == 401
