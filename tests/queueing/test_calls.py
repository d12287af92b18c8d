"""Every Lua call declares all its keys, by name, and they share one slot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.crc import key_slot

from queueing import keys
from queueing.batch_record import BatchStatus, Outcome
from queueing.batches import Batches
from queueing.calls import CALLS, Call, prelude
from queueing.catalogue import ModelSpec
from queueing.connection import Client
from queueing.cost import estimate
from queueing.images import reference
from queueing.jobstore import JobStore
from queueing.prequeue import PreQueue
from queueing.ratelimit import RateLimiter
from queueing.schemas import JobResult, JobStatus
from queueing.settings import QueueSettings
from queueing.tenancy import TenantLimits
from queueing.workqueue import WorkQueue
from tests.queueing.records import claim_all, record

SPEC = ModelSpec(name="m", path=Path("."), context_length=100, prompt_weight=1, output_weight=1)


def test_the_prelude_names_every_key_and_argument_of_every_call() -> None:
    text = prelude()
    for cls in CALLS:
        assert f"  {cls.function} = {{" in text
    assert 'local GROUP = "workers"' in text and 'local S_RUNNING = "running"' in text


async def test_every_call_of_a_job_lifecycle_stays_in_one_slot(
    redis_client: Client, queue_settings: QueueSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Call] = []
    original = Call.fcall

    def recording(self: Call) -> list[str | int]:
        sent.append(self)
        return original(self)

    monkeypatch.setattr(Call, "fcall", recording)
    store = JobStore(redis_client, queue_settings)
    jobs = [record() for _ in range(6)]
    for job in jobs:
        await store.enqueue(job, idempotency_key=None)
    a = WorkQueue(redis_client, SPEC, "a", queue_settings)
    b = WorkQueue(redis_client, SPEC, "b", queue_settings)
    held = await claim_all(a, 10.0, 4)
    assert len(held) == 4
    await a.emit(held[0], [("tokens", '{"text":"x"}')])
    await a.renew(held)
    await a.release(held[1], "test", graceful=True)
    await store.cancel(held[2].id, "local")
    await asyncio.sleep(queue_settings.lease_ms / 1000 + 0.1)
    assert await b.reclaim(10)  # held[2] and held[3] lapsed
    await a.complete(held[0], JobStatus.SUCCEEDED, result=JobResult(text="x"))
    batches, batch_id = Batches(redis_client), keys.new_batch_id()
    await batches.move(batch_id, {BatchStatus.VALIDATING}, BatchStatus.FAILED, failed_at=1)
    await batches.record(batch_id, [Outcome(0, "out", "{}")])
    await batches.lease(batch_id, "token", 1_000)
    pre = PreQueue(redis_client, [SPEC.name], "p", queue_settings)
    for job in [record().model_copy(update={"images": ["data:,x"]}) for _ in range(2)]:
        await store.enqueue(job)
    prepared = await pre.claim(2)
    cost = estimate(SPEC, prompt_tokens=5, max_tokens=5)
    await pre.handoff(prepared[0], SPEC, [reference("d" * 64)], ["d" * 64], 5, cost)
    await pre.fail(prepared[1], "bad image")
    limits = TenantLimits(requests_per_minute=10, units_per_minute=10)
    await RateLimiter(redis_client, queue_settings).charge("local", limits, requests=1, units=1)
    functions = {call.function for call in sent}
    assert functions == {cls.function for cls in CALLS}
    for call in sent:
        slots = {key_slot(key.encode()) for key in call.declared_keys()}
        assert len(slots) == 1, f"{call.function} spans slots {slots}"
