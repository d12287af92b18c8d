"""Per-tenant rate limits: token buckets for requests and units per minute, a queued-units cap.

The buckets of one tenant share one hash in a slot of its own (``keys.rate_limit``); one
``iq_ratelimit`` call refills, checks and charges both at once on the server's clock. The
units a tenant has queued or running are counted per partition by the queue's own
transitions (enqueue adds, every end of a job takes off: complete, fail, cancel, dead letter),
so they stay exact; the cap reads them over the model's partitions before the buckets are
charged, and an API process also counts its own admissions still on their way to the queue.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from queueing import keys
from queueing.calls import COUNTERS, RateLimit
from queueing.connection import Client, fcall
from queueing.errors import QueueFull, translated
from queueing.settings import QueueSettings
from queueing.tenancy import TenantLimits

REQUESTS = "requests"
TOKENS = "tokens"  # OpenAI's name; inferq counts model units
QUEUED = "queued_tokens"


@dataclass(frozen=True)
class Bucket:
    """One bucket as the headers show it: its size per minute, what is left, when it is full."""

    limit: float
    remaining: float
    reset_ms: int


@dataclass(frozen=True)
class Standing:
    """A tenant's buckets after a charge or a read (``None``: that bucket is unlimited)."""

    requests: Bucket | None
    tokens: Bucket | None


class RateLimited(QueueFull):
    """A tenant is past one of its limits: OpenAI's ``rate_limit_exceeded``."""

    code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, kind: str, retry_after_ms: int, standing: Standing | None = None
    ) -> None:
        super().__init__(message, retry_after_s=max(1, math.ceil(retry_after_ms / 1000)))
        self.kind = kind
        self.retry_after_ms = retry_after_ms
        self.standing = standing  # the buckets as the refusal found them (None: not read)


def duration(ms: float) -> str:
    """``ms`` the way OpenAI's ``x-ratelimit-reset-*`` headers write it: ``120ms``, ``1.5s``,
    ``6m0s``, ``1h2m3s`` (Go's duration format, to the millisecond)."""
    ms = max(0, math.ceil(ms))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    out = f"{hours}h" if hours else ""
    out += f"{minutes}m" if hours or minutes else ""
    return f"{out}{seconds}s"


def _bucket(limit: float | None, level: str, reset_ms: Any) -> Bucket | None:
    if limit is None:
        return None
    return Bucket(limit=limit, remaining=max(0.0, float(level)), reset_ms=int(reset_ms))


def _arg(limit: float | None) -> str:
    return "" if limit is None else repr(float(limit))


class RateLimiter:
    """Charges and reads tenants' buckets; checks their queued-units cap."""

    def __init__(self, client: Client, settings: QueueSettings) -> None:
        self.client = client
        self.settings = settings
        self._admitting: dict[tuple[str, str], float] = {}  # units on their way to the queue

    async def charge(
        self, tenant: str, limits: TenantLimits, *, requests: int, units: float, model: str = ""
    ) -> Standing:
        """Charge both buckets, or raise :class:`RateLimited` and charge nothing."""
        if limits.requests_per_minute is None and limits.units_per_minute is None:
            return Standing(requests=None, tokens=None)  # nothing to count: no round trip
        call = RateLimit(
            bucket=keys.rate_limit(tenant),
            requests_per_minute=_arg(limits.requests_per_minute),
            units_per_minute=_arg(limits.units_per_minute),
            requests=requests,
            units=units,
        )
        reply = await fcall(self.client, call)
        ok, refused, wait_ms, r_level, r_reset, u_level, u_reset = reply
        standing = Standing(
            requests=_bucket(limits.requests_per_minute, r_level, r_reset),
            tokens=_bucket(limits.units_per_minute, u_level, u_reset),
        )
        if int(ok) != 1:
            raise _refusal(tenant, model, standing, str(refused), int(wait_ms), requests, units)
        return standing

    async def read(self, tenant: str, limits: TenantLimits) -> Standing:
        """The buckets as they stand now, charging nothing."""
        return await self.charge(tenant, limits, requests=0, units=0.0)

    async def queued_units(self, tenant: str, model: str) -> float:
        """Units of ``tenant`` queued or running on ``model``, over its partitions."""
        field = COUNTERS["TENANT_OF"] + tenant
        with translated("cannot read the tenant's queued units"):
            async with self.client.pipeline(transaction=False) as pipe:
                for partition in range(self.settings.partitions_of(model)):
                    pipe.hget(keys.units(model, partition), field)
                raw: list[str | None] = await pipe.execute()
        return sum(float(value) for value in raw if value is not None)

    @asynccontextmanager
    async def admitting(
        self, tenant: str, limits: TenantLimits, model: str, units: float
    ) -> AsyncIterator[Standing]:
        """Admit one request of ``units`` on ``model``: the queued-units cap, then both buckets.

        Inside the block the job is enqueued; until it is, this process counts its units
        against the cap itself, so its concurrent requests cannot all pass one reading.
        """
        slot = (tenant, model)
        cap = limits.max_queued_units
        if cap is not None:
            queued = await self.queued_units(tenant, model) + self._admitting.get(slot, 0.0)
            if queued > 1e-6 and queued + units > cap:
                raise RateLimited(
                    f"Queued units limit reached for {model} for tenant {tenant}: Limit "
                    f"{cap:g}, Queued {queued:.2f}, Requested {units:.2f}. Please try again "
                    f"in {self.settings.retry_after_s}s, once some of your jobs finish.",
                    kind=QUEUED,
                    retry_after_ms=self.settings.retry_after_s * 1000,
                )
        standing = await self.charge(tenant, limits, requests=1, units=units, model=model)
        self._admitting[slot] = self._admitting.get(slot, 0.0) + units
        try:
            yield standing
        finally:
            left = self._admitting.pop(slot) - units
            if left > 1e-9:
                self._admitting[slot] = left


def _refusal(
    tenant: str,
    model: str,
    standing: Standing,
    refused: str,
    wait_ms: int,
    requests: int,
    units: float,
) -> RateLimited:
    """OpenAI's message: which limit, its size, what is used and asked, when to retry."""
    bucket = standing.requests if refused == REQUESTS else standing.tokens
    assert bucket is not None
    name, asked = (
        ("requests per min (RPM)", f"{requests}")
        if refused == REQUESTS
        else ("tokens per min (TPM, model units)", f"{units:.2f}")
    )
    used = max(0.0, bucket.limit - bucket.remaining)
    target = f" for {model}" if model else ""
    return RateLimited(
        f"Rate limit reached{target} for tenant {tenant} on {name}: Limit {bucket.limit:g}, "
        f"Used {round(used, 2):g}, Requested {asked}. Please try again in {duration(wait_ms)}.",
        kind=refused,
        retry_after_ms=wait_ms,
        standing=standing,
    )
