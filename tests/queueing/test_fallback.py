"""CPU fallback: the decision, and the router over the real registries and queues."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from queueing import keys
from queueing.catalogue import Catalogue, ModelSpec
from queueing.fallback import DOWN, SLOW, FallbackRouter, Reading, decide, oldest_interactive_wait_s
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.pools import PoolDecision, publish_decision
from queueing.presence import SEEN
from queueing.settings import FallbackSettings, QueueSettings
from queueing.workqueue import WorkQueue
from tests.queueing.records import record


def _spec(name: str, fallback: str | None = None, wait_s: float | None = None) -> ModelSpec:
    return ModelSpec(
        name=name,
        path=Path("."),
        context_length=4096,
        prompt_weight=1,
        output_weight=1,
        fallback=fallback,
        fallback_wait_s=wait_s,
    )


CATALOGUE = Catalogue({"m": _spec("m", fallback="cpu", wait_s=0.3), "cpu": _spec("cpu")})


def _reading(**fields: object) -> Reading:
    base: dict[str, object] = {
        "healthy": 1,
        "meant_to_run": True,
        "oldest_wait_s": 0.0,
        "fallback_healthy": 1,
    }
    return Reading(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reading", "down_for_s", "expected"),
    [
        (_reading(), 0.0, None),
        (_reading(healthy=0), 5.0, None),  # within the grace period
        (_reading(healthy=0), 10.0, DOWN),
        (_reading(healthy=0, meant_to_run=False), 60.0, None),  # scaled to zero by design
        (_reading(oldest_wait_s=3.0), 0.0, SLOW),
        (_reading(healthy=0, meant_to_run=False, oldest_wait_s=3.0), 0.0, SLOW),
        (_reading(healthy=0, fallback_healthy=0), 60.0, None),  # nowhere better to go
        (_reading(oldest_wait_s=3.0, fallback_healthy=0), 0.0, None),
    ],
)
def test_decide(reading: Reading, down_for_s: float, expected: str | None) -> None:
    assert decide(reading, down_for_s, grace_s=10.0, slo_s=2.0) == expected


def test_a_fallback_must_name_another_model_of_the_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.toml"
    entry = 'path = "x"\ncontext_length = 64\nprompt_weight = 1\noutput_weight = 1\n'
    path.write_text(f'[models.a]\n{entry}fallback = "b"\n[models.b]\n{entry}')
    assert Catalogue.load(tmp_path, path).get("a").fallback == "b"
    path.write_text(f'[models.a]\n{entry}fallback = "nope"\n')
    with pytest.raises(ValueError, match="fallback of 'a'"):
        Catalogue.load(tmp_path, path)
    path.write_text(f'[models.a]\n{entry}fallback = "a"\n')
    with pytest.raises(ValueError, match="fallback of 'a'"):
        Catalogue.load(tmp_path, path)


async def _worker(client: aioredis.Redis, name: str, model: str, *, health: str = "ok") -> None:
    """A worker's registry entry and alive key, as its heartbeat writes them."""
    entry = {"model": model, "health": health, SEEN: time.time()}
    await client.hset(keys.WORKERS, name, json.dumps(entry))
    await client.set(keys.heartbeat(name), "1", ex=5)


def _router(client: aioredis.Redis, grace_s: float = 0.0) -> FallbackRouter:
    settings = FallbackSettings(grace_s=grace_s, refresh_s=0.01)
    return FallbackRouter(client, CATALOGUE, QueueSettings(partitions=4), settings)


async def _route(router: FallbackRouter, job_class: JobClass = JobClass.INTERACTIVE) -> str:
    await asyncio.sleep(0.02)  # past refresh_s: the router reads the registries again
    return (await router.route("m", job_class)).model


async def test_a_model_without_a_healthy_worker_sends_interactive_jobs_to_its_fallback(
    redis_client: aioredis.Redis,
) -> None:
    router = _router(redis_client)
    await _worker(redis_client, "cpu-1", "cpu")
    route = await router.route("m", JobClass.INTERACTIVE)
    assert (route.model, route.fallback_from, route.reason) == ("cpu", "m", DOWN)
    assert await _route(router, JobClass.STANDARD) == "m"  # only interactive jobs move
    # a job with images stays unless the fallback takes images too
    assert (await router.route("m", JobClass.INTERACTIVE, images=True)).model == "m"
    assert (await router.route("cpu", JobClass.INTERACTIVE)).model == "cpu"  # no fallback
    await _worker(redis_client, "m-1", "m", health="stalled")
    assert await _route(router) == "cpu"  # a stalled worker is not a healthy one
    await _worker(redis_client, "m-1", "m")
    assert await _route(router) == "m"  # back as soon as it is healthy
    await redis_client.delete(keys.heartbeat("cpu-1"))
    await redis_client.delete(keys.heartbeat("m-1"))
    assert await _route(router) == "m"  # the fallback is down too: wait for the primary


async def test_a_pool_scaled_to_zero_is_not_down_and_the_grace_counts(
    redis_client: aioredis.Redis,
) -> None:
    await _worker(redis_client, "cpu-1", "cpu")
    zero = PoolDecision(pool="gpu", model="m", desired=0, reason="idle", at=time.time())
    await publish_decision(redis_client, zero)
    router = _router(redis_client, grace_s=0.3)
    assert await _route(router) == "m"
    await publish_decision(redis_client, PoolDecision(**{**zero.__dict__, "desired": 1}))
    assert await _route(router) == "m"  # meant to run, none healthy: the grace starts
    await asyncio.sleep(0.3)
    assert await _route(router) == "cpu"


async def test_the_grace_counts_from_the_last_beat_of_a_worker_that_died(
    redis_client: aioredis.Redis,
) -> None:
    await _worker(redis_client, "cpu-1", "cpu")
    entry = {"model": "m", "health": "ok", SEEN: time.time() - 60}  # its alive key expired
    await redis_client.hset(keys.WORKERS, "m-dead", json.dumps(entry))
    assert await _route(_router(redis_client, grace_s=30.0)) == "cpu"


async def test_interactive_jobs_waiting_past_the_slo_send_new_ones_to_the_fallback(
    redis_client: aioredis.Redis,
) -> None:
    settings = QueueSettings(partitions=4)
    store = JobStore(redis_client, settings)
    await _worker(redis_client, "cpu-1", "cpu")
    await _worker(redis_client, "m-1", "m")
    router = _router(redis_client)
    await store.enqueue(record("m", JobClass.STANDARD))  # other classes do not count
    assert await _route(router) == "m"
    await store.enqueue(record("m", JobClass.INTERACTIVE, band=2))
    await asyncio.sleep(0.35)  # past the model's SLO of 0.3 s
    route = await router.route("m", JobClass.INTERACTIVE)
    assert (route.model, route.reason) == ("cpu", SLOW)
    wq = WorkQueue(redis_client, CATALOGUE.get("m"), "m-1", settings)
    await wq.ensure_groups()
    claimed = await wq.claim(10.0, 10, idle=True)
    assert claimed[0].record.job_class is JobClass.INTERACTIVE
    assert await _route(router) == "m"  # nothing interactive waits any more


async def test_the_oldest_wait_is_the_oldest_undelivered_interactive_job(
    redis_client: aioredis.Redis,
) -> None:
    settings = QueueSettings(partitions=4)
    spec = CATALOGUE.get("m")
    store = JobStore(redis_client, settings)
    assert await oldest_interactive_wait_s(redis_client, settings, spec, time.time() * 1000) == 0
    await store.enqueue(record("m", JobClass.INTERACTIVE, band=1, partition=0))
    await asyncio.sleep(0.2)
    await store.enqueue(record("m", JobClass.INTERACTIVE, band=3, partition=3))
    wait = await oldest_interactive_wait_s(redis_client, settings, spec, time.time() * 1000)
    assert 0.2 <= wait < 2.0
