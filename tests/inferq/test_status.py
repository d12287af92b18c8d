"""``inferq status``: processes and their health, metrics URLs, queue depths; or not running."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from rich.console import Console
from typer.testing import CliRunner

from api.app import create_app
from inferq.cli import app as cli
from inferq.status import NotRunning, read_status, render
from queueing import keys
from queueing.catalogue import Catalogue
from queueing.jobstore import JobStore
from queueing.keys import JobClass
from queueing.pools import PoolDecision, publish_decision, publish_running, take_lease
from queueing.schemas import JobStatus
from queueing.server import port_is_free
from queueing.settings import ApiSettings, QueueSettings, Settings
from tests.api.support import serve
from tests.conftest import PARTITIONS, free_port
from tests.queueing.records import record
from tests.workers.support import ROOT, job, running_worker, status_is, wait_until
from workers.engines.scripted import ScriptedEngine


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m inferq ARGS`` with only ``env``'s INFERQ_ variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inferq",
        *args,
        cwd=ROOT,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def by_kind(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in report["processes"] if p["kind"] == kind]


async def test_status_lists_both_processes_their_metrics_urls_and_queue_depths(
    redis_client: aioredis.Redis,
    queue_url: str,
    queue_settings: QueueSettings,
    settings: Settings,
) -> None:
    store = JobStore(redis_client, queue_settings)
    model = settings.default_model
    waiting = [
        record(model, JobClass.INTERACTIVE, band=0, units=0.05),
        record(model, JobClass.BATCH, band=2, units=0.7),
        record(model, JobClass.BATCH, band=2, units=0.8),
    ]
    for r in waiting:
        await store.enqueue(r)
    port = free_port(18600)
    api = create_app(Settings(queue=queue_settings, api=ApiSettings(port=port)), queue_url)
    models = Catalogue.load(settings.models_dir, settings.catalogue).names()
    engine = ScriptedEngine()
    async with serve(api, port) as base, running_worker(queue_url, engine, queue_settings) as w:
        ran = job()
        await store.enqueue(ran)
        await wait_until(lambda: status_is(store, ran.id, JobStatus.SUCCEEDED), 5, "job done")

        async def both_registered() -> bool:
            report = await read_status(queue_url, models, QueueSettings(partitions=PARTITIONS))
            beats = [p["since_progress_s"] for p in by_kind(report, "worker")]
            return len(report["metrics_urls"]) == 2 and beats != [None]

        await wait_until(both_registered, 5, "API and worker registered, progress beaten")
        report = await read_status(queue_url, models, QueueSettings(partitions=PARTITIONS))
        env = {"INFERQ_REDIS__URL": queue_url, "INFERQ_QUEUE__PARTITIONS": str(PARTITIONS)}
        code, out, err = await run_cli("status", "--json", env=env)
        scraped = []
        async with httpx.AsyncClient(timeout=5) as http:
            for url in report["metrics_urls"]:
                scraped.append(await http.get(url))

    [api_proc] = by_kind(report, "api")
    [worker] = by_kind(report, "worker")
    assert api_proc["health"] == "ok" and api_proc["url"] == base
    assert api_proc["metrics_url"] == f"{base}/metrics" and api_proc["pid"] == os.getpid()
    assert worker["id"] == w.consumer and worker["health"] == "ok" and worker["model"] == "m"
    assert worker["metrics_url"] == w.metrics.url and worker["in_flight_jobs"] == 0
    assert 0 <= worker["since_progress_s"] < 5, "the worker produced tokens a moment ago"
    assert set(report["metrics_urls"]) == {f"{base}/metrics", w.metrics.url}
    assert [r.status_code for r in scraped] == [200, 200]
    assert all("inferq_" in r.text for r in scraped)

    queues = {q["model"]: q for q in report["queues"]}
    assert set(queues) == {*models, "m"}, "catalogue models and every model a worker serves"
    assert queues[model]["queued_jobs"] == 3 and queues[model]["queued_units"] == 1.55
    assert queues[model]["queues"] == [
        {"class": "interactive", "band": 0, "jobs": 1, "units": 0.05},
        {"class": "batch", "band": 2, "jobs": 2, "units": 1.5},
    ]
    assert queues["m"]["queued_jobs"] == 0 and queues["m"]["inflight_units"] == 0

    assert code == 0, err
    from_cli = json.loads(out)
    assert set(from_cli["metrics_urls"]) == set(report["metrics_urls"])
    assert from_cli["queues"] == report["queues"]

    text = io.StringIO()
    render(report, Console(file=text, width=200))
    shown = text.getvalue()
    assert w.metrics.url and w.metrics.url in shown and f"{base}/metrics" in shown
    assert w.consumer in shown and "ok" in shown
    assert "interactive:0" in shown and "batch:2" in shown

    after = await read_status(queue_url, models, QueueSettings(partitions=PARTITIONS))
    assert after["processes"] == [] and after["metrics_urls"] == [], "both said goodbye"


async def test_a_process_whose_alive_key_expired_is_stale(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    entry = {"model": "m", "pid": 1, "in_flight_jobs": 1, "last_progress": 0, "metrics_url": ""}
    await redis_client.hset(keys.WORKERS, "crashed", json.dumps(entry))
    await redis_client.hset(keys.WORKERS, "alive", json.dumps(entry))
    await redis_client.set(keys.heartbeat("alive"), "1", ex=5)
    report = await read_status(queue_url, [], QueueSettings(partitions=PARTITIONS))
    health = {p["id"]: p["health"] for p in report["processes"]}
    assert health == {"alive": "ok", "crashed": "stale"}
    assert all(p["since_progress_s"] is None for p in report["processes"]), "never progressed"
    assert report["metrics_urls"] == []


async def test_nothing_listening_is_reported_as_not_running() -> None:
    port = free_port(19500)
    url = f"redis://127.0.0.1:{port}"
    with pytest.raises(NotRunning, match=rf"inferq is not running \(no queue server at {url}\)"):
        await read_status(url, [], QueueSettings())
    env = {"INFERQ_REDIS__URL": None, "INFERQ_REDIS__EMBEDDED_PORT": str(port)}
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["status", "--json"], env=env)
    assert result.exit_code == 1
    assert f"inferq is not running (no queue server at {url})" in result.output
    assert port_is_free("127.0.0.1", port), "status never starts a server"


async def test_status_shows_each_pool_and_the_last_decision(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    await publish_decision(
        redis_client, PoolDecision("gpu", "m", 2, "up 1->2: arrivals 3 u/s", time.time())
    )
    await publish_running(redis_client, {"gpu": 2})
    assert await take_lease(redis_client, "scaler-1", 5.0)
    entry = {"model": "m", "pool": "gpu", "pid": 1, "health": "ok", "metrics_url": ""}
    await redis_client.hset(keys.WORKERS, "w1", json.dumps(entry))
    await redis_client.set(keys.heartbeat("w1"), "1", ex=5)
    report = await read_status(queue_url, [], QueueSettings(partitions=PARTITIONS))
    [pool] = report["pools"]
    assert (pool["pool"], pool["desired"], pool["starting"], pool["ready"]) == ("gpu", 2, 1, 1)
    assert pool["reason"] == "up 1->2: arrivals 3 u/s" and report["autoscaler"] == "scaler-1"
    text = io.StringIO()
    render(report, Console(file=text, width=200))
    assert "Pools" in text.getvalue() and "up 1->2: arrivals 3 u/s" in text.getvalue()
