"""``inferq up``'s worker pools: run as many workers per pool as the autoscaler decided
(the pool's minimum until it has), say how many run, and kill a worker whose heartbeat has
been silent for ``hung_after_s`` while its process lives (a hang); the supervisor then
restarts it."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable

from inferq.supervisor import Supervisor
from queueing.connection import Client, connect
from queueing.errors import ServerError
from queueing.pools import publish_running, read_decisions
from queueing.presence import SEEN
from queueing.settings import Settings
from queueing.signals import read_processes

log = logging.getLogger(__name__)


def worker_command(
    settings: Settings, url: str, pool: str, serial: int
) -> tuple[list[str], dict[str, str]]:
    """``inferq worker`` arguments and environment for the ``serial``-th worker of ``pool``."""
    spec = settings.pool(pool)
    env = {
        "INFERQ_REDIS__URL": url,
        "INFERQ_WORKER__POOL": pool,
        "INFERQ_WORKER__REPLICA": spec.replica_type,
    }
    if settings.worker.metrics_port:  # a fixed port: one after another per worker
        env["INFERQ_WORKER__METRICS_PORT"] = str(settings.worker.metrics_port + serial - 1)
    if spec.engine.device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = spec.engine.device.removeprefix("cuda:")
    return ["worker", "--model", settings.pool_model(pool)], env


Command = Callable[[Settings, str, str, int], tuple[list[str], dict[str, str]]]


class PoolKeeper:
    """Follows the recorded decisions with the supervisor's workers, every ``interval_s``."""

    def __init__(
        self,
        supervisor: Supervisor,
        settings: Settings,
        url: str,
        interval_s: float = 1.0,
        command: Command = worker_command,
    ) -> None:
        self.supervisor = supervisor
        self.settings = settings
        self.url = url
        self.interval_s = interval_s
        self.command = command
        self.stop = threading.Event()

    def start(self) -> threading.Thread:
        """Keep the pools from a thread (its own event loop) until :attr:`stop` is set."""
        thread = threading.Thread(
            target=asyncio.run, args=(self._run(),), name="pools", daemon=True
        )
        thread.start()
        return thread

    async def _run(self) -> None:
        client = await connect(self.url, load_library=False)
        try:
            while not self.stop.is_set():
                try:
                    await self.keep(client)
                except ServerError as exc:
                    log.warning("pools: %s", exc)
                await asyncio.sleep(self.interval_s)
        finally:
            await client.aclose()

    async def keep(self, client: Client) -> dict[str, int]:
        """One pass: every pool to its target; returns how many each runs."""
        decisions = await read_decisions(client)
        running = {}
        for pool, spec in self.settings.pools.items():
            decided = decisions.get(pool)
            target = decided.desired if decided is not None else spec.min_replicas
            spawn = functools.partial(self.command, self.settings, self.url, pool)
            self.supervisor.scale(pool, target, spawn)
            running[pool] = len(self.supervisor.pool(pool))
        await publish_running(client, running)
        await self._kill_hung(client)
        return running

    async def _kill_hung(self, client: Client) -> None:
        """A worker whose heartbeat has been silent for ``hung_after_s`` while its process
        runs has hung: kill it."""
        silent_since = time.time() - self.settings.worker.hung_after_s
        stale = {
            int(p["pid"])
            for p in await read_processes(client)
            if p["kind"] == "worker"
            and p["health"] == "stale"
            and p.get("pid")
            and float(p.get(SEEN) or 0) < silent_since
        }
        for pool in self.settings.pools:
            for child in self.supervisor.pool(pool):
                if child.alive() and child.proc is not None and child.proc.pid in stale:
                    self.supervisor.kill(child, "its heartbeat stopped")
