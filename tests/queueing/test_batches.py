"""Batch records: atomic status moves, each line recorded once, leases, listing."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from queueing import keys
from queueing.batch_record import Batch, BatchStatus, Outcome
from queueing.batches import Batches
from queueing.errors import BatchNotFound


def _batch(tenant: str = "t1", created_at: int | None = None) -> Batch:
    now = int(time.time()) if created_at is None else created_at
    return Batch(
        id=keys.new_batch_id(),
        tenant=tenant,
        endpoint="/v1/chat/completions",
        input_file_id="file-abc",
        completion_window="24h",
        status=BatchStatus.VALIDATING,
        created_at=now,
        expires_at=now + 86_400,
        metadata={"k": "v"},
    )


async def test_a_batch_is_stored_and_read_back_by_its_tenant_only(
    redis_client: aioredis.Redis,
) -> None:
    batches = Batches(redis_client)
    batch = _batch()
    await batches.create(batch)
    assert await batches.get(batch.id, "t1") == batch
    with pytest.raises(BatchNotFound):
        await batches.get(batch.id, "t2")
    with pytest.raises(BatchNotFound):
        await batches.get("batch_nope", "t1")
    assert await batches.active() == [batch.id]


async def test_moves_are_guarded_by_status(redis_client: aioredis.Redis) -> None:
    batches = Batches(redis_client)
    batch = _batch()
    await batches.create(batch)
    moved = await batches.move(
        batch.id, {BatchStatus.IN_PROGRESS}, BatchStatus.FINALIZING, finalizing_at=1
    )
    assert moved == (False, "validating")
    moved = await batches.move(
        batch.id, {BatchStatus.VALIDATING}, BatchStatus.FAILED, failed_at=5, errors=[{"x": 1}]
    )
    assert moved == (True, "failed")
    stored = await batches.get(batch.id)
    assert (stored.status, stored.failed_at, stored.errors) == (BatchStatus.FAILED, 5, [{"x": 1}])
    assert stored.status.terminal


async def test_each_line_is_recorded_once(redis_client: aioredis.Redis) -> None:
    batches = Batches(redis_client)
    batch = _batch()
    await batches.create(batch)
    first = [Outcome(n, "out" if n % 3 else "err", f"line {n}", 2, 3) for n in range(700)]
    assert await batches.record(batch.id, first) == (466, 234)
    again = [Outcome(n, "out", f"again {n}", 2, 3) for n in range(650, 710)]
    assert await batches.record(batch.id, again) == (10, 0)
    stored = await batches.get(batch.id)
    assert (stored.completed, stored.failed) == (476, 234)
    assert (stored.input_tokens, stored.output_tokens) == (710 * 2, 710 * 3)
    outputs = [line async for line in batches.lines(batch.id, "out")]
    errors = [line async for line in batches.lines(batch.id, "err")]
    assert len(outputs) == 476 and len(errors) == 234
    assert outputs[-1] == "again 709" and errors[0] == "line 0"
    assert await batches.written(batch.id, 695, 720) == set(range(695, 710))
    assert await batches.written(batch.id, 0, 0) == set()


async def test_a_lease_is_held_by_one_token_until_given_up(redis_client: aioredis.Redis) -> None:
    batches = Batches(redis_client)
    batch = _batch()
    await batches.create(batch)
    assert await batches.lease(batch.id, "a", 10_000)
    assert not await batches.lease(batch.id, "b", 10_000)
    assert await batches.lease(batch.id, "a", 10_000)  # renewed
    assert await batches.leased(batch.id)
    assert not await batches.lease(batch.id, "b", 0)  # b cannot give up a's lease
    assert await batches.lease(batch.id, "a", 0)
    assert not await batches.leased(batch.id)
    assert await batches.lease(batch.id, "b", 50)
    await asyncio.sleep(0.1)
    assert await batches.lease(batch.id, "c", 10_000)  # b's lapsed


async def test_pages_list_a_tenants_batches_newest_first(redis_client: aioredis.Redis) -> None:
    batches = Batches(redis_client)
    mine = [_batch(created_at=1000 + i) for i in range(5)]
    for batch in [*mine, _batch(tenant="other")]:
        await batches.create(batch)
    newest = [b.id for b in reversed(mine)]
    page, more = await batches.page("t1", None, 2)
    assert [b.id for b in page] == newest[:2] and more
    page, more = await batches.page("t1", page[-1].id, 10)
    assert [b.id for b in page] == newest[2:] and not more


async def test_custom_ids_are_checked_for_duplicates(redis_client: aioredis.Redis) -> None:
    batches = Batches(redis_client)
    batch = _batch()
    assert await batches.claim_custom_ids(batch.id, ["a", "b", "a"]) == [True, True, False]
    assert await batches.claim_custom_ids(batch.id, ["b", "c"]) == [False, True]
    await batches.forget_custom_ids(batch.id)
    assert await batches.claim_custom_ids(batch.id, ["a"]) == [True]


async def test_retired_batches_are_no_longer_active(redis_client: aioredis.Redis) -> None:
    batches = Batches(redis_client)
    batch = _batch()
    await batches.create(batch)
    await batches.record(batch.id, [Outcome(0, "out", "x")])
    await batches.retire(batch.id, 60)
    assert await batches.active() == []
    assert 0 < await redis_client.ttl(keys.batch_outputs(batch.id)) <= 60
