"""Benches fail loudly: a process that dies, or a worker that steps aside, ends the run.

A bench that runs inferq's processes guards each timed phase with :meth:`Watch.guard`:
every ``poll_s`` it checks that each process still runs and (given the queue server)
that no worker's heartbeat says stalled. The first problem cancels the phase and raises
:class:`BenchFailed` with the reason and the tail of the process's log; :func:`main_or_fail`
turns that into a message on stderr and exit status 1, after the bench's own clean-up.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis.asyncio as aioredis

from queueing import keys

_T = TypeVar("_T")
EXIT_FAILED = 1
_LOG_TAIL_LINES = 15


class BenchFailed(RuntimeError):
    """The bench cannot go on; the message says why."""


@dataclass(frozen=True)
class Watched:
    """A process the bench runs, and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path | None = None


def log_tail(path: Path | None, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or nothing."""
    if path is None or not path.exists():
        return ""
    with path.open("rb") as f:
        text = f.read()[-64_000:].decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


class Watch:
    """The processes of one side of a bench, and its workers' heartbeats (with ``redis_url``)."""

    def __init__(
        self, processes: list[Watched], redis_url: str | None = None, poll_s: float = 0.5
    ) -> None:
        self.processes = processes
        self.redis_url = redis_url
        self.poll_s = poll_s

    async def problem(self, client: aioredis.Redis | None) -> str | None:
        """What is wrong now: a process gone, or a worker stalled; ``None`` when all is well."""
        for watched in self.processes:
            code = watched.proc.poll()
            if code is not None:
                tail = log_tail(watched.log)
                where = f" (log {watched.log})" if watched.log else ""
                return f"{watched.name} exited with status {code}{where}" + (
                    f"; its last lines:\n{tail}" if tail else ""
                )
        if client is None:
            return None
        for name, raw in (await client.hgetall(keys.WORKERS)).items():
            entry = json.loads(raw)
            if entry.get("health") == "stalled":
                return f"worker {name} stepped aside: {entry.get('stalled') or 'stalled'}"
        return None

    async def guard(self, work: Awaitable[_T]) -> _T:
        """Run ``work``; raise :class:`BenchFailed` as soon as :meth:`problem` finds one."""
        client = None
        if self.redis_url is not None:
            client = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.poll_s)
                if done:
                    return task.result()
                if (reason := await self.problem(client)) is not None:
                    raise BenchFailed(reason)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            if client is not None:
                await client.aclose()


def main_or_fail(main: Callable[[], None]) -> None:
    """Run a bench's ``main``; a :class:`BenchFailed` ends it with the reason and status 1."""
    try:
        main()
    except BenchFailed as exc:
        print(f"bench failed: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_FAILED) from None
