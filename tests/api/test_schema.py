"""Requests generated from the OpenAPI schema (schemathesis) never get a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from queueing.catalogue import ModelSpec
from queueing.settings import Settings

# Read from an app that never starts (no lifespan, no Redis): just its routes. /readyz is left
# out: its 503 (no worker here) is its documented answer, tested in test_health.
OPERATIONS = [
    (method.upper(), path)
    for path, methods in create_app(Settings(), "redis://unused").openapi()["paths"].items()
    for method in methods
    if path != "/readyz"
]


@pytest.fixture
def api_schema(
    redis_client: aioredis.Redis, queue_url: str, api_settings: Settings, spec: ModelSpec
) -> schemathesis.BaseSchema:
    """The app's schema served over ASGI; schemathesis runs (and ends) the app's lifespan."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(api_settings, queue_url))


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_server_errors(api_schema: schemathesis.BaseSchema, method: str, path: str) -> None:
    operation = api_schema[path][method]
    calls: list[int] = []

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: schemathesis.Case[Any]) -> None:
        response = case.call_and_validate(checks=[not_a_server_error])
        calls.append(response.status_code)

    check()
    assert calls and max(calls) < 500
