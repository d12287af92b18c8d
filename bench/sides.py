"""Run one side of a bench as a producer process and a consumer process, in lock step."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from queue import Empty
from typing import Any, TypeVar

import redis.asyncio as aioredis
import uvloop
from redis.asyncio.cluster import RedisCluster

from bench.watch import BenchFailed

Report = dict[str, Any]
_POLL_S = 0.5
_T = TypeVar("_T")


@dataclass(frozen=True)
class Plan:
    """What one side runs: a warm-up, timed bursts of ``n`` jobs, then a paced latency run."""

    url: str
    n: int
    warmup: int
    concurrency: int
    enqueue_batch: int
    claim_batch: int
    consumers: int
    max_jobs: int
    rate: float
    latency_s: float
    partitions: int = 1
    wait_aof: bool = True  # False: skip WAITAOF, to see what the fsync wait costs

    @property
    def paced(self) -> int:
        """Jobs in the paced latency run (none when ``rate`` is 0)."""
        return int(self.rate * self.latency_s)


Role = Callable[[Plan, Barrier], Coroutine[Any, Any, Report]]


def _child(role: Role, name: str, plan: Plan, barrier: Barrier, out: Any) -> None:
    try:
        report: Report = uvloop.run(role(plan, barrier))
    except BaseException:
        barrier.abort()
        out.put((name, {"error": traceback.format_exc()}))
    else:
        out.put((name, report))


def run_side(plan: Plan, roles: Sequence[tuple[str, Role]], timeout_s: float) -> dict[str, Report]:
    """Start one process per role, wait for their reports, and fail loudly if any failed:
    a process killed or crashed (no report, a non-zero exit) ends the side within a second."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(roles), timeout=timeout_s)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(role, name, plan, barrier, out), daemon=True)
        for name, role in roles
    ]
    for proc in procs:
        proc.start()
    reports: dict[str, Report] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(reports) < len(procs):
            try:
                name, report = out.get(timeout=_POLL_S)
                reports[name] = report
                continue
            except Empty:
                pass
            for (name, _), proc in zip(roles, procs, strict=True):
                if name not in reports and proc.exitcode not in (None, 0):
                    barrier.abort()
                    raise BenchFailed(f"bench process {name} exited with status {proc.exitcode}")
            if time.monotonic() > deadline:
                raise BenchFailed(f"a bench process did not report within {timeout_s:g} s")
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    errors = [f"{name}:\n{r['error']}" for name, r in reports.items() if "error" in r]
    if errors:
        raise RuntimeError("bench process failed:\n" + "\n".join(errors))
    return reports


async def phase(barrier: Barrier) -> None:
    """Wait until every process of the side reached the same phase."""
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait)


def _cpu_s(info: dict[str, Any]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def server_cpu_s(client: aioredis.Redis | RedisCluster) -> float:
    """CPU seconds the server has used (INFO CPU, user + sys), summed over every cluster node."""
    if isinstance(client, RedisCluster):
        per_node: dict[str, dict[str, Any]] = await client.info(
            "cpu", target_nodes=RedisCluster.ALL_NODES
        )
        return sum(_cpu_s(info) for info in per_node.values())
    return _cpu_s(await client.info("cpu"))


class Meter:
    """CPU seconds this process and the server (every node of a cluster) spent between
    ``start`` and ``stop``."""

    def __init__(self, client: aioredis.Redis | RedisCluster | None = None) -> None:
        self.client = client
        self._proc = 0.0
        self._server = 0.0

    async def _server_cpu(self) -> float:
        return 0.0 if self.client is None else await server_cpu_s(self.client)

    async def start(self) -> None:
        """Begin a phase."""
        self._proc, self._server = time.process_time(), await self._server_cpu()

    async def stop(self) -> dict[str, float]:
        """End the phase: ``{"proc": s, "server": s}`` (server 0 without a client)."""
        proc = time.process_time() - self._proc
        return {"proc": proc, "server": await self._server_cpu() - self._server}


async def metered(meter: Meter, work: Awaitable[Report]) -> Report:
    """Run ``work`` and add the CPU seconds it cost to its report."""
    await meter.start()
    report = await work
    return {**report, **await meter.stop()}


def settled(data: _T) -> _T:
    """Collect garbage and freeze what is left, so that no GC pause of a timed phase walks the
    bench's own fixtures (prebuilt jobs); returns ``data``."""
    gc.collect()
    gc.freeze()
    return data


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
