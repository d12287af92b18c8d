"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections import Counter

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import CatalogueDep, HubDep, MetricsDep, SettingsDep, StoreDep
from queueing.errors import ServerError
from queueing.serving import WAITING, live_workers

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
    """Ready to serve: the queue answers, the event hub is subscribed, the catalogue is loaded,
    and every model that ``/v1/models`` lists has a live worker (``models`` says which)."""
    try:
        redis_ok = await asyncio.wait_for(store.ping(), PING_TIMEOUT_S)
        workers = await asyncio.wait_for(live_workers(store.client), PING_TIMEOUT_S)
    except (ServerError, TimeoutError):
        redis_ok, workers = False, Counter()
    default = catalogue.models.get(settings.default_model)
    models = {name: "serving" if workers[name] else WAITING for name in catalogue.names()}
    checks = {
        "redis": redis_ok,
        "events": hub.connected,
        "catalogue": default is not None and (default.path / "tokenizer.json").exists(),
        "workers": all(workers[name] for name in catalogue.names()),
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks, "models": models}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep, store: StoreDep, catalogue: CatalogueDep) -> Response:
    """Prometheus text exposition of this process's metrics."""
    body = await metrics.render(store, catalogue)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
