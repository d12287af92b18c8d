"""The tenant registry on a real server (single and cluster): keys by digest, rotation,
revocation, atomic changes, and reservations checked against capacity in the same step."""

from __future__ import annotations

import asyncio
import time

import pytest

from queueing import keys
from queueing.connection import Client
from queueing.tenancy import TenantLimits, TenantShare
from queueing.tenant_registry import CapacityOf, TenantRegistry
from queueing.tenants import (
    KeyNotFound,
    ReservationRefused,
    RotateKey,
    TenantCreate,
    TenantExists,
    TenantNotFound,
    TenantUpdate,
)
from tests.queueing.dump import server_text

SECRET = "test-secret-for-key-digests"
NONE = TenantLimits()  # no default limits


async def plenty(model: str) -> float:
    """A capacity no test reservation reaches."""
    return 1e9


def capacity_of(units_per_s: float) -> CapacityOf:
    """A fixed capacity for every model."""

    async def capacity(model: str) -> float:
        return units_per_s

    return capacity


async def test_a_created_key_is_found_by_digest_and_never_stored(redis_client: Client) -> None:
    registry = TenantRegistry(redis_client, SECRET)
    body = TenantCreate(id="acme", name="Acme", limits=TenantLimits(requests_per_minute=60))
    _, key = await registry.create(body, NONE, plenty)
    assert key.startswith("iq-") and len(key) > 40
    found = await registry.lookup(registry.digest(key))
    assert found is not None and found.id == "acme" and found.limits == body.limits
    assert await registry.lookup(registry.digest(key + "x")) is None
    # Another secret gives another digest: a copy of the registry cannot test guesses.
    assert TenantRegistry(redis_client, "other").digest(key) != registry.digest(key)
    stored = await server_text(redis_client)
    assert key not in stored and key[3:] not in stored
    assert registry.digest(key) in stored
    share = await redis_client.hget(keys.TENANT_SHARES, "acme")
    assert TenantShare.model_validate_json(share) == TenantShare()
    with pytest.raises(TenantExists):
        await registry.create(body, NONE, plenty)


async def test_rotation_revokes_at_once_or_after_a_grace(redis_client: Client) -> None:
    registry = TenantRegistry(redis_client, SECRET)
    _, first = await registry.create(TenantCreate(id="t1"), NONE, plenty)
    _, second, _ = await registry.rotate("t1", RotateKey().grace_s)
    assert await registry.lookup(registry.digest(first)) is None
    assert await registry.lookup(registry.digest(second)) is not None
    assert await redis_client.hget(keys.TENANT_KEYS, registry.digest(first)) is None

    record, third, third_id = await registry.rotate("t1", 0.5)
    assert {k.id for k in record.keys} >= {third_id} and len(record.keys) == 2
    assert await registry.lookup(registry.digest(second)) is not None  # in its grace
    await asyncio.sleep(0.6)
    assert await registry.lookup(registry.digest(second)) is None  # grace over
    assert await registry.lookup(registry.digest(third)) is not None
    # The next change drops the expired key's digest from the index.
    record = await registry.revoke("t1", third_id)
    assert record.keys == []
    assert await redis_client.hlen(keys.TENANT_KEYS) == 0
    with pytest.raises(KeyNotFound):
        await registry.revoke("t1", third_id)
    with pytest.raises(TenantNotFound):
        await registry.rotate("nobody", 0)


async def test_updates_merge_limits_and_share(redis_client: Client) -> None:
    registry = TenantRegistry(redis_client, SECRET)
    await registry.create(TenantCreate(id="t2"), NONE, plenty)
    defaults = TenantLimits(requests_per_minute=10, units_per_minute=100.0)
    change = TenantUpdate.model_validate({"limits": {"requests_per_minute": 50}})
    record = await registry.update("t2", change, defaults, plenty)
    assert record.limits == TenantLimits(requests_per_minute=50, units_per_minute=100.0)
    change = TenantUpdate.model_validate({"limits": {"units_per_minute": None}})
    record = await registry.update("t2", change, defaults, plenty)
    assert record.limits == TenantLimits(requests_per_minute=50)  # explicit null: unlimited
    record = await registry.update(
        "t2", TenantUpdate.model_validate({"limits": None}), defaults, plenty
    )
    assert record.limits is None  # back to the defaults
    change = TenantUpdate.model_validate({"share": {"weight": 3}, "disabled": True})
    record = await registry.update("t2", change, defaults, plenty)
    assert record.share.weight == 3 and record.disabled
    assert (await registry.get("t2")).disabled
    stored = await redis_client.hget(keys.TENANT_SHARES, "t2")
    assert TenantShare.model_validate_json(stored).weight == 3
    assert [r.id for r in await registry.all()] == ["t2"]


async def test_reservations_beyond_capacity_are_refused_with_the_reason(
    redis_client: Client,
) -> None:
    registry = TenantRegistry(redis_client, SECRET)
    ten = capacity_of(10.0)
    await registry.create(TenantCreate(id="a", share=TenantShare(reserved={"m": 6.0})), NONE, ten)
    with pytest.raises(ReservationRefused, match=r"other tenants reserve 6 of the 10 units/s"):
        await registry.create(
            TenantCreate(id="b", share=TenantShare(reserved={"m": 5.0})), NONE, ten
        )
    assert await redis_client.hget(keys.TENANTS, "b") is None  # nothing written
    await registry.create(TenantCreate(id="b", share=TenantShare(reserved={"m": 4.0})), NONE, ten)
    grow = TenantUpdate.model_validate({"share": {"reserved": {"m": 4.5}}})
    with pytest.raises(ReservationRefused):
        await registry.update("b", grow, TenantLimits(), ten)
    # A capacity that shrank below the reservations refuses growth, not other changes.
    await registry.update("a", TenantUpdate(name="A"), TenantLimits(), capacity_of(1.0))
    shrink = TenantUpdate.model_validate({"share": {"reserved": {"m": 3.0}}})
    assert (await registry.update("b", shrink, TenantLimits(), ten)).share.reserved == {"m": 3.0}


async def test_racing_reservations_cannot_both_fit(redis_client: Client) -> None:
    registry = TenantRegistry(redis_client, SECRET)
    ten = capacity_of(10.0)
    bodies = [TenantCreate(id=f"r{i}", share=TenantShare(reserved={"m": 6.0})) for i in range(4)]
    results = await asyncio.gather(
        *(registry.create(body, NONE, ten) for body in bodies), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, ReservationRefused) for r in results if isinstance(r, BaseException))


async def test_concurrent_changes_of_one_tenant_are_all_kept(redis_client: Client) -> None:
    registry = TenantRegistry(redis_client, SECRET)
    await registry.create(TenantCreate(id="c"), NONE, plenty)
    started = time.monotonic()
    await asyncio.gather(*(registry.rotate("c", 60) for _ in range(5)))
    assert len((await registry.get("c")).keys) == 6  # every rotation kept its key
    assert time.monotonic() - started < 5
