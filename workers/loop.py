"""The LLM worker: the shared claim loop with the engine's handler, and its process entry."""

from __future__ import annotations

import asyncio
import logging
import signal

from queueing.catalogue import ModelSpec
from queueing.connection import Client, connect, durable_writes
from queueing.images import PreparedImages
from queueing.processes import process_name
from queueing.settings import QueueSettings, Settings, WorkerSettings
from queueing.workqueue import WorkQueue
from workers.calibration import budget_for
from workers.calibration import load as load_calibration
from workers.claimloop import ClaimLoop
from workers.engine import Engine
from workers.heartbeat import Load
from workers.llm_handler import DEFAULT_UNIT_BUDGET, LlmHandler
from workers.metrics import WorkerMetrics
from workers.watchdog import Watchdog

__all__ = ["DEFAULT_UNIT_BUDGET", "Worker", "run_worker"]

log = logging.getLogger(__name__)


class Worker(ClaimLoop):
    """Pulls one model's jobs into an engine while its in-flight units stay under budget
    (:class:`LlmHandler` decides what fits and runs each job; :class:`ClaimLoop` holds the
    leases); ``images`` reads the prepared images of jobs that have them. The engine's
    watchdog stops claims while it is stalled and fails the worker when it is hung or dead:
    :attr:`failure` then says why.
    """

    queue: WorkQueue

    def __init__(
        self,
        client: Client,
        spec: ModelSpec,
        engine: Engine,
        *,
        queue_settings: QueueSettings,
        worker_settings: WorkerSettings,
        consumer: str | None = None,
        burst: bool = False,
        grace_s: float = 30.0,
        claim_batch: int = 8,
        unit_budget: float | None = None,
        units_per_s: float | None = None,
        images: PreparedImages | None = None,
    ) -> None:
        consumer = consumer or process_name()
        queue = WorkQueue(client, spec, consumer, queue_settings)
        self.llm = LlmHandler(
            client,
            queue,
            engine,
            worker_settings,
            claim_batch=claim_batch,
            unit_budget=unit_budget,
            units_per_s=units_per_s,
            images=images,
        )
        super().__init__(
            client,
            queue,
            self.llm,
            lease_ms=queue_settings.lease_ms,
            renew_every_ms=worker_settings.renew_every_ms,
            block_ms=worker_settings.block_ms,
            consumer=consumer,
            burst=burst,
            grace_s=grace_s,
        )
        self.spec = spec
        self.engine = engine
        self.settings = worker_settings
        self.budget = self.llm.budget

    @property
    def metrics(self) -> WorkerMetrics:
        """The worker's Prometheus metrics."""
        return self.llm.metrics

    @property
    def watchdog(self) -> Watchdog:
        """The engine's hang watchdog."""
        assert self.llm.watchdog is not None
        return self.llm.watchdog

    def load(self) -> Load:
        """Units and jobs in the engine now."""
        return self.llm.load()

    def health(self) -> dict[str, object]:
        """What the heartbeat says of the engine."""
        return self.llm.health()


async def run_worker(
    url: str,
    spec: ModelSpec,
    engine: Engine,
    settings: Settings,
    *,
    burst: bool = False,
    grace_s: float = 30.0,
    consumer: str | None = None,
) -> str | None:
    """Connect, run a :class:`Worker` until SIGTERM/SIGINT (or drained, in burst mode).

    The in-flight budget comes from the settings, else from this replica's calibration.
    Returns why the worker stepped aside (its engine was unhealthy), or ``None``.
    """
    client = await connect(url, blocking=True)
    images_client = await connect(url, decode_responses=False, load_library=False)
    budget = await budget_for(client, spec.name, settings.worker)
    calibration = await load_calibration(client, spec.name, settings.worker.replica)
    worker = Worker(
        client,
        spec,
        engine,
        queue_settings=settings.queue,
        worker_settings=settings.worker,
        consumer=consumer,
        burst=burst,
        grace_s=grace_s,
        unit_budget=budget,
        units_per_s=calibration.units_per_s if calibration else None,
        images=PreparedImages(images_client, settings.queue.result_ttl_s),
    )
    if settings.redis.wait_aof:
        worker.queue.wait_aof = await durable_writes(client, settings.redis)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        log.info("worker %s serving %s, budget %s units", worker.consumer, spec.name, worker.budget)
        await worker.run()
        return worker.failure
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await images_client.aclose()
        await client.aclose()
