"""Helpers for tests of tenants at the API: settings with the registry on, tenants made
through the admin API."""

from __future__ import annotations

from typing import Any

import httpx

from queueing.settings import Settings, TenantSettings

ADMIN_KEY = "admin-key-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def with_tenants(settings: Settings, cache_s: float = 0.0, **fields: Any) -> Settings:
    """``settings`` with the tenant registry and the admin API on."""
    tenants = TenantSettings.model_validate(
        {"admin_key": ADMIN_KEY, "key_secret": "secret-for-tests", "cache_s": cache_s, **fields}
    )
    return settings.model_copy(update={"tenants": tenants})


def bearer(key: str) -> dict[str, str]:
    """The Authorization header of ``key``."""
    return {"Authorization": f"Bearer {key}"}


async def new_tenant(client: httpx.AsyncClient, tenant_id: str, **fields: Any) -> str:
    """Create ``tenant_id`` through the admin API; returns its API key."""
    response = await client.post("/admin/tenants", json={"id": tenant_id, **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    key: str = response.json()["api_key"]
    return key
