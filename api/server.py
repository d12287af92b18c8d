"""Serving the API with uvicorn."""

from __future__ import annotations

import uvicorn

from api.app import check_bind, create_app
from queueing.settings import Settings


def run_api(settings: Settings, redis_url: str) -> None:
    """Serve the API on ``settings.api.host:port`` until interrupted (blocking)."""
    check_bind(settings)
    config = uvicorn.Config(
        create_app(settings, redis_url),
        host=settings.api.host,
        port=settings.api.port,
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=5,
        log_level="info",
    )
    uvicorn.Server(config).run()
