"""Requests generated from the admin API's schema, with the admin key, never get a 5xx (most
change a real tenant)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from queueing.catalogue import ModelSpec
from queueing.connection import connect
from queueing.server import EmbeddedValkey
from queueing.settings import Settings
from queueing.tenancy import TenantLimits
from queueing.tenant_registry import TenantRegistry
from queueing.tenants import TenantCreate
from tests.api.tenancy import ADMIN, with_tenants

TENANT = "fuzz"
OPERATIONS = [
    (method.upper(), path)
    for path, methods in create_app(with_tenants(Settings()), "redis://unused")
    .openapi()["paths"]
    .items()
    for method in methods
    if path.startswith("/admin")
]


async def _uncalibrated(model: str) -> float:
    raise AssertionError("tenant 'fuzz' reserves nothing")


@pytest.fixture
async def admin_schema(
    valkey: EmbeddedValkey, api_settings: Settings, spec: ModelSpec
) -> schemathesis.BaseSchema:
    """The app's schema served over ASGI, the admin routes on, and a tenant 'fuzz' to change
    (on the single server: the inputs are what varies here, not the backend)."""
    client = await connect(valkey.url)
    await client.flushall()
    await TenantRegistry(client, "any").create(
        TenantCreate(id=TENANT), TenantLimits(), _uncalibrated
    )
    await client.aclose()
    app = create_app(with_tenants(api_settings), valkey.url)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_server_errors(admin_schema: schemathesis.BaseSchema, method: str, path: str) -> None:
    operation = admin_schema[path][method]
    calls: list[int] = []

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: schemathesis.Case[Any]) -> None:
        case.headers = {**(case.headers or {}), **ADMIN}
        if case.path_parameters and "tenant_id" in case.path_parameters:
            case.path_parameters["tenant_id"] = TENANT  # most cases change a real tenant
        response = case.call_and_validate(checks=[not_a_server_error])
        calls.append(response.status_code)

    check()
    assert calls and max(calls) < 500
