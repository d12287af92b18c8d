"""Provisioned throughput on the real engine: a reservation is served while another floods."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from queueing import keys
from queueing.admission import Admission
from queueing.catalogue import Catalogue, ModelSpec
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.schemas import JobRecord, SamplingParams
from queueing.settings import QueueSettings, WorkerSettings
from queueing.tenancy import TenantShare
from tests.conftest import PARTITIONS
from tests.workers.support import running_worker
from workers.engines.vllm import VllmEngine

pytestmark = pytest.mark.e2e

SETTINGS = QueueSettings(partitions=PARTITIONS, shares_refresh_s=0.5)
# About ten 32-token jobs in the engine at once: a backlog waits in the queue, where the
# claim decides who goes next.
WORKER = WorkerSettings(unit_budget=0.35)
ANTAGONIST_WEIGHT = 9  # the antagonist's fair share alone would leave the tenant a tenth
WARMUP_S, WINDOW_S = 8.0, 24.0


def jobs(admission: Admission, tenant: str, count: int) -> list[JobRecord]:
    """``count`` jobs of exactly 32 output tokens (``ignore_eos``), round robin over the
    partitions as the API places them."""
    params = SamplingParams(max_tokens=32, ignore_eos=True)
    return [
        admission.admit(
            tenant=tenant,
            partition=n % PARTITIONS,
            model=None,
            prompt=f"Count slowly from {n}:",
            messages=None,
            params=params,
            job_class=JobClass.STANDARD,
            stream_tokens=False,
        )
        for n in range(count)
    ]


async def claimed_rates(
    store: JobStore, floods: dict[str, list[JobRecord]], since: float, until: float
) -> dict[str, float]:
    """Units/s each tenant's jobs were claimed at (started) between ``since`` and ``until``."""
    rates = {}
    for tenant, records in floods.items():
        started = [await store.get(r.id, tenant) for r in records]
        units = sum(
            r.estimated_units for r in started if r.started_at and since <= r.started_at < until
        )
        rates[tenant] = units / (until - since)
    return rates


async def measure(
    store: JobStore, floods: dict[str, list[JobRecord]], admission: Admission
) -> dict[str, float]:
    """Add to both floods (300 and 100 jobs), wait out the warm-up, and measure a window of
    claims (of every job the tenants sent, earlier ones too)."""
    more = {"flood": jobs(admission, "flood", 300), "gold": jobs(admission, "gold", 100)}
    for tenant, records in more.items():
        floods[tenant] += records
    await store.enqueue_many(interleave(more))
    await asyncio.sleep(WARMUP_S)
    since = time.time()
    await asyncio.sleep(WINDOW_S)
    return await claimed_rates(store, floods, since, time.time())


def interleave(floods: dict[str, list[JobRecord]]) -> list[JobRecord]:
    """The tenants' jobs in the order they arrive when both send at once."""
    longest = max(len(records) for records in floods.values())
    return [r[n] for n in range(longest) for r in floods.values() if n < len(r)]


@pytest.mark.timeout(480)  # the session engine may start here: minutes on a loaded machine
async def test_a_reservation_is_served_while_another_tenant_floods(
    queue_url: str,
    redis_client: aioredis.Redis,
    vllm_engine: VllmEngine,
    catalogue: Catalogue,
    spec: ModelSpec,
) -> None:
    """First without a reservation (the tenant gets its weighted share, about a tenth), then
    with one of a third of that run's measured throughput: the tenant gets >= 95% of it."""
    admission = Admission(catalogue, spec.name)
    store = JobStore(redis_client, SETTINGS)
    antagonist = TenantShare(weight=ANTAGONIST_WEIGHT).model_dump_json()
    await redis_client.hset(keys.TENANT_SHARES, "flood", antagonist)
    floods: dict[str, list[JobRecord]] = {"flood": [], "gold": []}
    async with running_worker(queue_url, vllm_engine, SETTINGS, WORKER, spec=spec) as worker:
        before = await measure(store, floods, admission)
        capacity = sum(before.values())
        reserved = capacity / 3
        share = TenantShare(reserved={spec.name: reserved}).model_dump_json()
        await redis_client.hset(keys.TENANT_SHARES, "gold", share)
        after = await measure(store, floods, admission)
        worker.stop()
    print(
        f"\nwithout a reservation: gold {before['gold']:.4f} units/s, flood "
        f"{before['flood']:.4f} (weight {ANTAGONIST_WEIGHT}); throughput {capacity:.4f}\n"
        f"reserved {reserved:.4f} units/s: gold {after['gold']:.4f} "
        f"({after['gold'] / reserved:.1%} of it), flood {after['flood']:.4f}"
    )
    assert before["gold"] < 0.95 * reserved, "the test needs a reservation above the fair share"
    assert after["gold"] >= 0.95 * reserved
