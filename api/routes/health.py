"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import CatalogueDep, HubDep, MetricsDep, SettingsDep, StoreDep
from queueing.errors import ServerError

router = APIRouter(tags=["health"])

PING_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready; the body says why"}})
async def readyz(
    store: StoreDep, catalogue: CatalogueDep, hub: HubDep, settings: SettingsDep
) -> JSONResponse:
    """Ready to serve: the queue answers, the event hub is subscribed, the catalogue is loaded."""
    try:
        redis_ok = await asyncio.wait_for(store.ping(), PING_TIMEOUT_S)
    except (ServerError, TimeoutError):
        redis_ok = False
    default = catalogue.models.get(settings.default_model)
    checks = {
        "redis": redis_ok,
        "events": hub.connected,
        "catalogue": default is not None and (default.path / "tokenizer.json").exists(),
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep, store: StoreDep, catalogue: CatalogueDep) -> Response:
    """Prometheus text exposition of this process's metrics."""
    body = await metrics.render(store, catalogue)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
