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
    """Ready to serve: the queue answers, the event hub is subscribed, the served models (those
    the pools run, as ``/v1/models`` lists them) are in the catalogue and prepared, and each
    has a live worker (``models`` says which; other models with a live worker are shown too)."""
    try:
        redis_ok = await asyncio.wait_for(store.ping(), PING_TIMEOUT_S)
        workers = await asyncio.wait_for(live_workers(store.client), PING_TIMEOUT_S)
    except (ServerError, TimeoutError):
        redis_ok, workers = False, Counter()
    served = settings.served_models()
    shown = sorted({*served, *(name for name in catalogue.names() if workers[name])})
    models = {name: "serving" if workers[name] else WAITING for name in shown}
    specs = [catalogue.models.get(name) for name in served]
    checks = {
        "redis": redis_ok,
        "events": hub.connected,
        "catalogue": all(s is not None and (s.path / "tokenizer.json").exists() for s in specs),
        "workers": all(workers[name] for name in served),
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks, "models": models}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep, store: StoreDep, catalogue: CatalogueDep) -> Response:
    """Prometheus text exposition of this process's metrics."""
    body = await metrics.render(store, catalogue)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
