"""Who is calling: a static key (``INFERQ_API_KEYS``), a registry key, or the local user.

Precedence: with neither static keys nor the tenant registry (``tenants.key_secret`` unset),
every caller is the local tenant; otherwise a bearer key is required, matched first against
the static keys (no round trip), then looked up in the registry by its keyed digest. A
registry lookup (a hit or a miss) is trusted for ``tenants.cache_s`` in this process, so a
revoked key or a disabled tenant is refused within that time.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from api.errors import Forbidden, Unauthorized
from queueing.settings import Settings
from queueing.tenancy import TenantLimits
from queueing.tenant_registry import TenantRegistry
from queueing.tenants import TenantRecord

LOCAL_TENANT = "local"
MAX_CACHED = 10_000  # digests held at most (a flood of bad keys evicts the oldest)


@dataclass(frozen=True)
class Caller:
    """The tenant behind a request, and its own limits (None: the settings' defaults)."""

    tenant: str
    limits: TenantLimits | None = None


class KeyCache:
    """Registry lookups by digest, each trusted for ``ttl_s`` (misses too)."""

    def __init__(self, registry: TenantRegistry, ttl_s: float) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, TenantRecord | None]] = {}

    async def record(self, key: str) -> TenantRecord | None:
        """The tenant whose live key ``key`` is, else None."""
        digest = self.registry.digest(key)
        now = time.monotonic()
        cached = self._entries.get(digest)
        if cached is not None and cached[0] > now:
            record = cached[1]
        else:
            record = await self.registry.lookup(digest)
            if len(self._entries) >= MAX_CACHED:
                self._evict(now)
            self._entries[digest] = (now + self.ttl_s, record)
        # A key whose grace after a rotation ends is refused then, cached or not.
        return record if record is not None and record.key(digest, time.time()) else None

    def _evict(self, now: float) -> None:
        live = {d: e for d, e in self._entries.items() if e[0] > now}
        while len(live) >= MAX_CACHED:  # the oldest half goes (dicts keep insertion order)
            live = dict(list(live.items())[len(live) // 2 :])
        self._entries = live


class Authenticator:
    """Turns a bearer key (or none) into a :class:`Caller`."""

    def __init__(self, settings: Settings, keys: KeyCache | None) -> None:
        self.static = {k.encode(): tenant for k, tenant in settings.api_keys.items()}
        self.keys = keys

    @property
    def open(self) -> bool:
        """True in the local mode: no keys of any kind are configured."""
        return not self.static and self.keys is None

    async def caller(self, token: str | None) -> Caller:
        """The caller presenting ``token``; raises Unauthorized or Forbidden."""
        if self.open:
            return Caller(LOCAL_TENANT)
        if token is None:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'")
        raw = token.encode()
        for key, tenant in self.static.items():
            if hmac.compare_digest(key, raw):
                return Caller(tenant)
        record = await self.keys.record(token) if self.keys is not None else None
        if record is None:
            raise Unauthorized("Incorrect API key provided")
        if record.disabled:
            raise Forbidden(f"tenant '{record.id}' is disabled", code="tenant_disabled")
        return Caller(record.id, record.limits)
