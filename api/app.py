"""The FastAPI app factory: everything it shares lives on ``app.state``, made in the lifespan."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from api import errors
from api.auth import Authenticator, KeyCache
from api.bodylimit import BodyLimit
from api.events import EventHub
from api.metrics import Metrics
from api.ratelimit import RateLimitHeaders, get_meter
from api.registration import api_presence
from api.routes import admin, batches, events, files, health, jobs, openai
from queueing.admission import Admission
from queueing.batches import Batches
from queueing.catalogue import Catalogue
from queueing.connection import Client, connect
from queueing.fallback import FallbackRouter
from queueing.files import Files
from queueing.filestore import open_storage
from queueing.jobstore import JobStore
from queueing.processes import advertised_url
from queueing.ratelimit import RateLimiter
from queueing.settings import Settings
from queueing.tenant_registry import TenantRegistry

log = logging.getLogger(__name__)

REDIS_CONNECTIONS = 64


class UnsafeBind(RuntimeError):
    """The API would listen beyond loopback with no API keys to guard it."""


class UnsafeTenants(RuntimeError):
    """An admin key is set but no secret to store the tenants' API keys under."""


def check_bind(settings: Settings) -> None:
    """Refuse a non-loopback bind address unless API keys are configured."""
    if settings.api_keys or settings.tenants.key_secret:
        return
    host = settings.api.host.strip("[]")
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UnsafeBind(
            f"refusing to listen on {settings.api.host!r} without API keys: anyone who can "
            "reach it could submit jobs. Set INFERQ_API_KEYS (key:tenant,...) or the tenant "
            "registry (INFERQ_TENANTS__KEY_SECRET), or bind INFERQ_API__HOST to 127.0.0.1."
        )


def check_tenants(settings: Settings) -> None:
    """Refuse an admin key without ``tenants.key_secret``: keys it made could not be checked."""
    if settings.tenants.admin_key and not settings.tenants.key_secret:
        raise UnsafeTenants(
            "INFERQ_TENANTS__ADMIN_KEY is set but INFERQ_TENANTS__KEY_SECRET is not: set a long "
            "random secret (e.g. `openssl rand -hex 32`), the same in every API process"
        )


def _authenticator(settings: Settings, client: Client) -> Authenticator:
    """Static keys, and the tenant registry when its secret is set."""
    secret = settings.tenants.key_secret
    if secret is None:
        return Authenticator(settings, None)
    registry = TenantRegistry(client, secret.get_secret_value())
    return Authenticator(settings, KeyCache(registry, settings.tenants.cache_s))


def create_app(settings: Settings, redis_url: str) -> FastAPI:
    """The inferq HTTP API over the queue at ``redis_url``."""
    check_tenants(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = await connect(redis_url, max_connections=REDIS_CONNECTIONS, blocking=True)
        hub = EventHub(client, settings.queue.max_partitions)
        try:
            store = JobStore(client, settings.queue, settings.redis)
            if settings.redis.wait_aof and not await store.check_durability():
                log.warning(
                    "the queue server has no WAITAOF: a 202 means the job is written, "
                    "not yet fsynced to the AOF"
                )
            catalogue = Catalogue.load(settings.models_dir, settings.catalogue)
            await hub.start()
            app.state.settings = settings
            app.state.store = store
            app.state.catalogue = catalogue
            app.state.admission = Admission(catalogue, settings.default_model)
            app.state.hub = hub
            app.state.batches = Batches(client)
            app.state.files = Files(client, open_storage(settings), settings.files)
            app.state.metrics = Metrics(CollectorRegistry())
            app.state.auth = auth = _authenticator(settings, client)
            app.state.registry = auth.keys.registry if auth.keys else None
            app.state.limiter = RateLimiter(client, settings.queue)
            app.state.fallback = FallbackRouter(
                client, catalogue, settings.queue, settings.fallback
            )
            async with api_presence(
                client, advertised_url(settings.api.host, settings.api.port)
            ).kept():
                yield
        finally:
            await hub.stop()
            await client.aclose()

    app = FastAPI(
        title="inferq",
        summary="Asynchronous LLM inference over Redis streams",
        version="0.1.0",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(
        BodyLimit, max_bytes=settings.api.max_body_bytes, streamed=frozenset({files.UPLOAD})
    )
    app.add_middleware(RateLimitHeaders)
    metered = [Depends(get_meter)]  # every authenticated route: x-ratelimit-* headers
    app.include_router(jobs.router, dependencies=metered)
    app.include_router(events.router, dependencies=metered)
    app.include_router(openai.router, dependencies=metered)
    app.include_router(batches.router, dependencies=metered)
    app.include_router(files.router, dependencies=metered)
    app.include_router(health.router)
    if settings.tenants.admin_key:
        app.include_router(admin.router)
    return app
