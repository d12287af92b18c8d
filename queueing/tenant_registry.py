"""The tenant registry in Redis: one small registry in the ``{reg}`` slot.

``keys.TENANTS`` holds each tenant's record, ``keys.TENANT_KEYS`` maps a key's digest to its
tenant (an O(1) lookup), ``keys.TENANT_SHARES`` each tenant's share (fair sharing reads it).
One slot lets every change be one atomic step over the three, with the check that the
reservations of all tenants fit each model's capacity; the registry is small and off the hot
path (each API process caches lookups), so one slot is no bottleneck.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from queueing import apikeys, keys
from queueing.connection import Client
from queueing.errors import ServerError, translated
from queueing.tenancy import TenantLimits
from queueing.tenants import (
    ApiKeyInfo,
    KeyNotFound,
    ReservationRefused,
    TenantCreate,
    TenantExists,
    TenantNotFound,
    TenantRecord,
    TenantUpdate,
)

# model -> the units/s its pools can serve; raises ReservationRefused when nothing backs it.
CapacityOf = Callable[[str], Awaitable[float]]

_LOOKUP = """
local id = redis.call('HGET', KEYS[2], ARGV[1])
if not id then return false end
return redis.call('HGET', KEYS[1], id)
"""

# Compare-and-set a record: ARGV id, expected JSON ('' = must not exist), new JSON, share
# JSON, n, n digests to index, m, m digests to drop, then model, wanted, capacity triples.
_SAVE = """
local id = ARGV[1]
local current = redis.call('HGET', KEYS[1], id)
if ARGV[2] == '' then
  if current then return {'exists'} end
elseif current ~= ARGV[2] then
  return {'conflict'}
end
local i = 5
local adds = {unpack(ARGV, i + 1, i + tonumber(ARGV[i]))}
i = i + tonumber(ARGV[i]) + 1
local drops = {unpack(ARGV, i + 1, i + tonumber(ARGV[i]))}
i = i + tonumber(ARGV[i]) + 1
if i <= #ARGV then
  local shares = redis.call('HGETALL', KEYS[3])
  for j = i, #ARGV, 3 do
    local model, total = ARGV[j], tonumber(ARGV[j + 1])
    for s = 1, #shares, 2 do
      if shares[s] ~= id then
        local reserved = cjson.decode(shares[s + 1])['reserved']
        if type(reserved) == 'table' and reserved[model] then total = total + reserved[model] end
      end
    end
    if total > tonumber(ARGV[j + 2]) + 1e-9 then
      return {'over', model, tostring(total - tonumber(ARGV[j + 1])), ARGV[j + 2]}
    end
  end
end
redis.call('HSET', KEYS[1], id, ARGV[3])
redis.call('HSET', KEYS[3], id, ARGV[4])
for _, d in ipairs(adds) do redis.call('HSET', KEYS[2], d, id) end
for _, d in ipairs(drops) do redis.call('HDEL', KEYS[2], d) end
return {'ok'}
"""
_ATTEMPTS = 8  # a change races another on the same tenant: read again and retry


class TenantRegistry:
    """Create, change and look up tenants; API keys are digested under ``secret``."""

    def __init__(self, client: Client, secret: str) -> None:
        self.client = client
        self._secret = secret

    def digest(self, key: str) -> str:
        """The digest the registry knows ``key`` by."""
        return apikeys.digest(key, self._secret)

    async def lookup(self, digest: str) -> TenantRecord | None:
        """The tenant whose live key has ``digest`` (one round trip), else None."""
        with translated("cannot look up the API key"):
            raw = await self.client.eval(_LOOKUP, 2, keys.TENANTS, keys.TENANT_KEYS, digest)
        if raw is None:
            return None
        record = TenantRecord.model_validate_json(raw)
        return record if record.key(digest, time.time()) else None

    async def get(self, tenant_id: str) -> TenantRecord:
        """The tenant ``tenant_id``; raises :class:`TenantNotFound`."""
        return (await self._read(tenant_id))[0]

    async def _read(self, tenant_id: str) -> tuple[TenantRecord, str]:
        with translated("cannot read the tenant registry"):
            raw: str | None = await self.client.hget(keys.TENANTS, tenant_id)
        if raw is None:
            raise TenantNotFound(f"no tenant '{tenant_id}'", param="tenant")
        return TenantRecord.model_validate_json(raw), raw

    async def all(self) -> list[TenantRecord]:
        """Every tenant, by id."""
        with translated("cannot read the tenant registry"):
            raw: dict[str, str] = await self.client.hgetall(keys.TENANTS)
        return [TenantRecord.model_validate_json(raw[t]) for t in sorted(raw)]

    async def create(
        self, body: TenantCreate, defaults: TenantLimits, capacity: CapacityOf
    ) -> tuple[TenantRecord, str]:
        """A new tenant with one API key; returns it and the key (shown once).

        Limits it is not given are the ``defaults``' (as :meth:`TenantUpdate.apply` does).
        """
        now = time.time()
        key, info = self._new_key(now)
        given = body.limits.model_dump(exclude_unset=True) if body.limits else None
        record = TenantRecord(
            id=body.id or f"tn_{secrets.token_hex(6)}",
            name=body.name,
            limits=None if given is None else defaults.model_copy(update=given),
            share=body.share,
            created_at=now,
            keys=[info],
        )
        await self._save(None, "", record, capacity)
        return record, key

    async def update(
        self, tenant_id: str, change: TenantUpdate, defaults: TenantLimits, capacity: CapacityOf
    ) -> TenantRecord:
        """Apply ``change`` to the tenant (atomically; reservations checked)."""
        return await self._change(tenant_id, lambda r: change.apply(r, defaults), capacity)

    async def rotate(self, tenant_id: str, grace_s: float) -> tuple[TenantRecord, str, str]:
        """A new key; the live ones stay valid ``grace_s`` more (0: revoked at once).

        Returns the record, the new key (shown once) and its id.
        """
        issued: list[tuple[str, str]] = []

        def rotated(record: TenantRecord) -> TenantRecord:
            now = time.time()
            until = now + grace_s
            old = [
                k.model_copy(update={"expires_at": min(k.expires_at or until, until)})
                for k in record.keys
                if grace_s > 0
            ]
            key, info = self._new_key(now)
            issued[:] = [(key, info.id)]
            return record.model_copy(update={"keys": [*old, info]})

        record = await self._change(tenant_id, rotated)
        key, key_id = issued[0]
        return record, key, key_id

    async def revoke(self, tenant_id: str, key_id: str) -> TenantRecord:
        """Revoke the tenant's key ``key_id`` at once."""

        def revoked(record: TenantRecord) -> TenantRecord:
            live = record.pruned(time.time()).keys
            if not any(k.id == key_id for k in live):
                raise KeyNotFound(f"tenant '{tenant_id}' has no key '{key_id}'", param="key_id")
            return record.model_copy(update={"keys": [k for k in live if k.id != key_id]})

        return await self._change(tenant_id, revoked)

    def _new_key(self, now: float) -> tuple[str, ApiKeyInfo]:
        key = apikeys.new_key()
        return key, ApiKeyInfo(id=apikeys.new_key_id(), digest=self.digest(key), created_at=now)

    async def _change(
        self,
        tenant_id: str,
        change: Callable[[TenantRecord], TenantRecord],
        capacity: CapacityOf | None = None,
    ) -> TenantRecord:
        """Apply ``change`` atomically (read, change, compare-and-set; again on a race).

        ``capacity`` None: the change grows no reservation (a key's rotation or revocation).
        """
        for _ in range(_ATTEMPTS):
            current, raw = await self._read(tenant_id)
            new = change(current).pruned(time.time())
            if await self._save(current, raw, new, capacity):
                return new
        raise ServerError(f"tenant '{tenant_id}' changed {_ATTEMPTS} times while being changed")

    async def _save(
        self,
        current: TenantRecord | None,
        raw: str,
        new: TenantRecord,
        capacity: CapacityOf | None,
    ) -> bool:
        """Write ``new`` if the stored record is still ``raw`` (``current``); False on a race."""
        before = {k.digest for k in current.keys} if current else set()
        after = {k.digest for k in new.keys}
        checks: list[Any] = []
        for model, wanted in sorted(new.share.reserved.items()):
            grows = current is None or wanted > current.share.reserved.get(model, 0.0)
            if grows and capacity is not None:
                checks += [model, repr(wanted), repr(await capacity(model))]
        args = [
            new.id,
            raw,
            new.model_dump_json(),
            new.share.model_dump_json(),
            len(after - before),
            *sorted(after - before),
            len(before - after),
            *sorted(before - after),
            *checks,
        ]
        with translated("cannot write the tenant registry"):
            reply = await self.client.eval(
                _SAVE, 3, keys.TENANTS, keys.TENANT_KEYS, keys.TENANT_SHARES, *args
            )
        return _outcome(new, reply)


def _outcome(new: TenantRecord, reply: list[Any]) -> bool:
    status = reply[0]
    if status == "exists":
        raise TenantExists(f"a tenant '{new.id}' exists already", param="id")
    if status == "over":
        _, model, others, capacity = reply
        raise ReservationRefused(
            f"reserving {new.share.reserved[model]:g} units/s of {model} would exceed its "
            f"capacity: other tenants reserve {float(others):g} of the {float(capacity):g} "
            "units/s its pools can serve (calibrated units/s x max replicas)",
            param="share.reserved",
        )
    return bool(status == "ok")
