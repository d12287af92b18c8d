"""Rate limits at the HTTP boundary: a request's meter, and OpenAI's ``x-ratelimit-*`` headers.

Every authenticated route gets a :class:`Meter` (a router dependency). Routes that submit work
charge it; :class:`RateLimitHeaders` writes the standing it saw (or reads it, charging
nothing, for routes that charged nothing) onto the response, errors and streams included.
A tenant without a limit gets no header for it, and costs no round trip.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import TenantDep, TenantLimitsDep
from queueing.errors import InferqError
from queueing.ratelimit import Bucket, RateLimited, RateLimiter, Standing, duration
from queueing.tenancy import TenantLimits

log = logging.getLogger(__name__)

STATE_KEY = "inferq_meter"  # where a request's meter lives in its ASGI scope's state


class Meter:
    """One request's tenant, its limits, and the buckets' standing once charged or read."""

    def __init__(self, limiter: RateLimiter, tenant: str, limits: TenantLimits) -> None:
        self.limiter = limiter
        self.tenant = tenant
        self.limits = limits
        self.standing: Standing | None = None

    @property
    def rated(self) -> bool:
        """Whether the tenant has a per-minute limit at all."""
        return self.limits.requests_per_minute is not None or (
            self.limits.units_per_minute is not None
        )

    @asynccontextmanager
    async def admitting(self, model: str, units: float) -> AsyncIterator[None]:
        """Admit one job of ``units`` on ``model`` (cap and buckets); enqueue it inside."""
        if not self.rated and self.limits.max_queued_units is None:
            yield
            return
        try:
            async with self.limiter.admitting(self.tenant, self.limits, model, units) as standing:
                self.standing = standing
                yield
        except RateLimited as refused:
            await self._refused(refused)
            raise

    async def request(self) -> None:
        """Charge one request and no units (creating a batch: its lines are not metered)."""
        if self.limits.requests_per_minute is None:
            return
        try:
            self.standing = await self.limiter.charge(
                self.tenant, self.limits, requests=1, units=0.0
            )
        except RateLimited as refused:
            await self._refused(refused)
            raise

    async def _refused(self, refused: RateLimited) -> None:
        """Keep the standing a refusal found; a refusal by the cap reads it for the headers."""
        self.standing = refused.standing
        if self.rated and self.standing is None:
            self.standing = await self.limiter.read(self.tenant, self.limits)

    async def headers(self) -> list[tuple[bytes, bytes]]:
        """OpenAI's ``x-ratelimit-*`` headers for the buckets the tenant has."""
        if not self.rated:
            return []
        standing = self.standing or await self.limiter.read(self.tenant, self.limits)
        out: list[tuple[bytes, bytes]] = []
        for name, bucket in (("requests", standing.requests), ("tokens", standing.tokens)):
            if bucket is not None:
                out.extend(_bucket_headers(name, bucket))
        return out


def _bucket_headers(name: str, bucket: Bucket) -> list[tuple[bytes, bytes]]:
    values = {
        "limit": f"{bucket.limit:g}",
        "remaining": str(int(bucket.remaining)),
        "reset": duration(bucket.reset_ms),
    }
    return [(f"x-ratelimit-{k}-{name}".encode(), v.encode()) for k, v in values.items()]


def get_meter(request: Request, tenant: TenantDep, limits: TenantLimitsDep) -> Meter:
    """The request's meter; its standing goes into the response's headers."""
    limiter: RateLimiter = request.app.state.limiter
    meter = Meter(limiter, tenant, limits)
    setattr(request.state, STATE_KEY, meter)
    return meter


MeterDep = Annotated[Meter, Depends(get_meter)]


class RateLimitHeaders:
    """A pure-ASGI wrapper adding the meter's headers to the response's start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            meter = state.get(STATE_KEY)
            if message["type"] == "http.response.start" and isinstance(meter, Meter):
                try:
                    extra = await meter.headers()
                except InferqError as exc:
                    log.warning("no rate-limit headers for %s: %s", scope["path"], exc)
                    extra = []
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
