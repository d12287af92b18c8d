"""``/admin``: the tenant control plane (tenants, their keys, limits, shares) and usage.

Mounted only when ``tenants.admin_key`` is set; every route needs that key as the bearer.
"""

from __future__ import annotations

import hmac
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import LOCAL_TENANT
from api.deps import CatalogueDep, SettingsDep, StoreDep
from api.errors import Forbidden, Unauthorized
from queueing.capacity import reservable_units
from queueing.errors import InvalidRequest
from queueing.settings import Settings
from queueing.tenant_registry import CapacityOf, TenantRegistry
from queueing.tenants import (
    TENANT_ID,
    IssuedKey,
    RotateKey,
    TenantCreate,
    TenantExists,
    TenantRecord,
    TenantUpdate,
    TenantView,
)
from queueing.usage import read_usage

_admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminKey", description="The admin key (tenants.admin_key)"
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    """401 without a bearer key, 403 with one that is not the admin key."""
    if credentials is None:
        raise Unauthorized("Missing admin key: send 'Authorization: Bearer <admin key>'")
    expected = settings.tenants.admin_key
    given = credentials.credentials.encode()
    if expected is None or not hmac.compare_digest(expected.get_secret_value().encode(), given):
        raise Forbidden("This key may not use the admin API")


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
TenantIdPath = Annotated[str, Path(pattern=TENANT_ID, description="The tenant's id")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in {
        401: "Missing admin key",
        403: "Not the admin key",
        404: "No such tenant, key or model",
        409: "The tenant exists, or a reservation exceeds the model's capacity",
    }.items()
}


def get_registry(request: Request) -> TenantRegistry:
    """The app's tenant registry (there is one whenever the admin routes are mounted)."""
    registry: TenantRegistry = request.app.state.registry
    return registry


RegistryDep = Annotated[TenantRegistry, Depends(get_registry)]


def get_capacity(settings: SettingsDep, store: StoreDep, catalogue: CatalogueDep) -> CapacityOf:
    """Units/s a model's pools can serve at most (for reservations)."""

    async def capacity(model: str) -> float:
        catalogue.get(model)  # an unknown model is a 404
        return await reservable_units(store.client, settings, model)

    return capacity


CapacityDep = Annotated[CapacityOf, Depends(get_capacity)]


@router.post("/tenants", status_code=201, responses=_ERRORS)
async def create_tenant(
    body: TenantCreate, settings: SettingsDep, registry: RegistryDep, capacity: CapacityDep
) -> IssuedKey:
    """A new tenant and its first API key (shown only in this answer)."""
    if body.id is not None and body.id in {LOCAL_TENANT, *settings.api_keys.values()}:
        raise TenantExists(f"'{body.id}' is a tenant of the settings (INFERQ_API_KEYS or local)")
    record, key = await registry.create(body, settings.tenants.default_limits, capacity)
    return _issued(record, key, record.keys[0].id, settings)


@router.get("/tenants", responses=_ERRORS)
async def list_tenants(settings: SettingsDep, registry: RegistryDep) -> dict[str, Any]:
    """Every tenant of the registry."""
    defaults = settings.tenants.default_limits
    return {
        "object": "list",
        "data": [TenantView.of(r, defaults) for r in await registry.all()],
    }


@router.get("/tenants/{tenant_id}", responses=_ERRORS)
async def show_tenant(
    tenant_id: TenantIdPath, settings: SettingsDep, registry: RegistryDep
) -> TenantView:
    """One tenant."""
    return TenantView.of(await registry.get(tenant_id), settings.tenants.default_limits)


@router.patch("/tenants/{tenant_id}", responses=_ERRORS)
async def update_tenant(
    tenant_id: TenantIdPath,
    body: TenantUpdate,
    settings: SettingsDep,
    registry: RegistryDep,
    capacity: CapacityDep,
) -> TenantView:
    """Change a tenant's name, limits, share (weight, reservations), or disable it."""
    defaults = settings.tenants.default_limits
    return TenantView.of(await registry.update(tenant_id, body, defaults, capacity), defaults)


@router.post("/tenants/{tenant_id}/keys", status_code=201, responses=_ERRORS)
async def rotate_key(
    tenant_id: TenantIdPath,
    settings: SettingsDep,
    registry: RegistryDep,
    body: RotateKey | None = None,
) -> IssuedKey:
    """A new API key; the tenant's other keys stop at once, or after ``grace_s``."""
    grace_s = body.grace_s if body else 0.0
    record, key, key_id = await registry.rotate(tenant_id, grace_s)
    return _issued(record, key, key_id, settings)


@router.delete("/tenants/{tenant_id}/keys/{key_id}", responses=_ERRORS)
async def revoke_key(
    tenant_id: TenantIdPath,
    key_id: Annotated[str, Path(max_length=64)],
    settings: SettingsDep,
    registry: RegistryDep,
) -> TenantView:
    """Revoke one of the tenant's API keys at once."""
    record = await registry.revoke(tenant_id, key_id)
    return TenantView.of(record, settings.tenants.default_limits)


def since_time(value: str, now: float) -> float:
    """Epoch seconds, or a duration back from now (``90s``, ``15m``, ``24h``, ``7d``)."""
    match = _DURATION.match(value.strip())
    if match:
        return now - float(match.group(1)) * _SECONDS[match.group(2)]
    try:
        return float(value)
    except ValueError:
        raise InvalidRequest(
            f"since: '{value}' is neither epoch seconds nor a duration like 24h", param="since"
        ) from None


@router.get("/usage", responses=_ERRORS)
async def usage(
    settings: SettingsDep,
    store: StoreDep,
    tenant: Annotated[str | None, Query(description="One tenant (default: all)")] = None,
    since: Annotated[str, Query(description="Epoch seconds, or back from now: 24h, 7d")] = "24h",
) -> dict[str, Any]:
    """Units, tokens and requests by outcome per tenant and model, from ``since`` until now.

    Counted in buckets of ``queue.usage_bucket_s``: the first bucket is counted whole.
    """
    now = time.time()
    start = since_time(since, now)
    rows = await read_usage(store.client, settings.queue, since=start, until=now, tenant=tenant)
    return {"object": "list", "since": start, "until": now, "data": rows}


def _issued(record: TenantRecord, key: str, key_id: str, settings: Settings) -> IssuedKey:
    view = TenantView.of(record, settings.tenants.default_limits)
    return IssuedKey(id=key_id, api_key=key, tenant=view)
