"""CPU fallback: where a new interactive job of a model goes while its pool cannot serve it.

A catalogue entry may name a ``fallback`` model (served by another pool, e.g. a small model
on vLLM-CPU workers). New interactive jobs of the model go there while (a) its pool is meant
to run (the autoscaler wants replicas, or has decided nothing) yet no worker of the model has
been healthy for ``grace_s``, or (b) its oldest waiting interactive job has waited longer
than its SLO; and only while the fallback has a healthy worker itself. Jobs already queued
stay where they are. Each API process reads the signals at most every ``refresh_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from queueing import keys
from queueing.calls import COUNTERS
from queueing.catalogue import Catalogue, ModelSpec
from queueing.connection import Client
from queueing.errors import ServerError, translated
from queueing.figures import read_counters
from queueing.keys import JobClass
from queueing.pools import read_decisions
from queueing.presence import SEEN
from queueing.settings import FallbackSettings, QueueSettings
from queueing.signals import read_processes

log = logging.getLogger(__name__)

DOWN = "down"  # no healthy worker for the grace period
SLOW = "slow"  # interactive jobs wait past the SLO


@dataclass(frozen=True)
class Route:
    """Where a job goes: ``model``, and when it is a fallback, the model asked for and why."""

    model: str
    fallback_from: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Reading:
    """What the router knows of a model with a fallback, and of that fallback."""

    healthy: int  # live workers of the model that are not stalled
    meant_to_run: bool  # False: the autoscaler scaled every pool of the model to zero
    oldest_wait_s: float  # how long its oldest waiting interactive job has waited (0: none)
    fallback_healthy: int
    died_at: float | None = None  # the last beat of a worker of the model that died (Unix s)


def decide(reading: Reading, down_for_s: float, grace_s: float, slo_s: float) -> str | None:
    """Why new interactive jobs should go to the fallback (:data:`DOWN`, :data:`SLOW`), or
    None. ``down_for_s``: how long the model has had no healthy worker while meant to run."""
    if reading.fallback_healthy == 0:
        return None  # the fallback cannot serve either: the job waits for the primary
    if reading.healthy == 0 and reading.meant_to_run and down_for_s >= grace_s:
        return DOWN
    if reading.oldest_wait_s > slo_s:
        return SLOW
    return None


@dataclass(frozen=True)
class WorkerHealth:
    """Per model: workers alive and healthy, and the last beat of its workers that died."""

    healthy: Counter[str]
    died_at: dict[str, float]


async def worker_health(client: Client) -> WorkerHealth:
    """Healthy workers per model (heartbeat alive, not stalled), and per model the latest
    beat of a worker whose heartbeat expired (gone without saying goodbye)."""
    workers = [p for p in await read_processes(client) if p["kind"] == "worker"]
    healthy = Counter(str(p.get("model", "")) for p in workers if p["health"] == "ok")
    died_at: dict[str, float] = {}
    for p in workers:
        if p["health"] == "stale":
            model = str(p.get("model", ""))
            died_at[model] = max(died_at.get(model, 0.0), float(p.get(SEEN) or 0))
    return WorkerHealth(healthy, died_at)


async def meant_to_run(client: Client, model: str) -> bool:
    """False only when the autoscaler's latest decisions scale every pool of ``model`` to
    zero (a pool at zero by design is not down); True without any decision for it."""
    decided = [d.desired for d in (await read_decisions(client)).values() if d.model == model]
    return not decided or max(decided) > 0


async def oldest_interactive_wait_s(
    client: Client, settings: QueueSettings, spec: ModelSpec, now_ms: float
) -> float:
    """Seconds the oldest waiting interactive job of ``spec`` has waited (0: none waits).

    Each queue's arrival set holds its waiting jobs by arrival, so its first member is its
    oldest; a member reads ``<len(tenant)>:<tenant>:<seq>:<enqueued ms>:<units>:<job id>``.
    """
    counters = (await read_counters(client, settings, [spec.name]))[spec.name]
    orders = [
        keys.arrivals(spec.name, partition, JobClass.INTERACTIVE, band)
        for partition, raw in enumerate(counters)
        for band in range(spec.bands)
        if float(raw.get(COUNTERS["JOBS_OF"] + keys.queue_field(JobClass.INTERACTIVE, band), 0))
    ]
    if not orders:
        return 0.0
    with translated(f"cannot read the interactive queues of {spec.name}"):
        async with client.pipeline(transaction=False) as pipe:
            for order in orders:
                pipe.zrange(order, 0, 0)
            heads: list[list[str]] = await pipe.execute()
    enqueued = [_enqueued_ms(rows[0]) for rows in heads if rows]
    return max(0.0, (now_ms - min(enqueued)) / 1000) if enqueued else 0.0


def _enqueued_ms(member: str) -> int:
    """The enqueue time (ms) of a waiting-set member (see ``wait_job`` in the Lua library)."""
    length, rest = member.split(":", 1)
    return int(rest[int(length) + 1 :].split(":")[1])


class FallbackRouter:
    """Routes new interactive jobs of models with a fallback; one per API process."""

    def __init__(
        self,
        client: Client,
        catalogue: Catalogue,
        queue: QueueSettings,
        settings: FallbackSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.catalogue = catalogue
        self.queue = queue
        self.settings = settings
        self.clock = clock
        self._lock = asyncio.Lock()
        self._read_at: dict[str, float] = {}
        self._readings: dict[str, Reading] = {}
        self._down_since: dict[str, float] = {}
        self._reasons: dict[str, str | None] = {}

    async def route(self, model: str, job_class: JobClass, *, images: bool = False) -> Route:
        """Where a new job of ``model`` (a catalogue name) and ``job_class`` goes; a job with
        ``images`` stays on the primary unless the fallback takes images too."""
        spec = self.catalogue.get(model)
        if spec.fallback is None or job_class is not JobClass.INTERACTIVE:
            return Route(model)
        if images and not self.catalogue.get(spec.fallback).takes_images:
            return Route(model)
        reading = await self._reading(spec)
        if reading is None:
            return Route(model)  # the signals cannot be read: keep to the primary
        down_for_s = self._down_for_s(model, reading)
        slo_s = spec.fallback_wait_s or self.settings.wait_s
        reason = decide(reading, down_for_s, self.settings.grace_s, slo_s)
        self._say(spec, reason, reading, down_for_s)
        if reason is None:
            return Route(model)
        return Route(spec.fallback, fallback_from=model, reason=reason)

    def _down_for_s(self, model: str, reading: Reading) -> float:
        """How long ``model`` has had no healthy worker while meant to run: since the last
        beat of a worker that died, else since this router first saw none healthy."""
        now = self.clock()
        if reading.healthy or not reading.meant_to_run:
            self._down_since.pop(model, None)
            return 0.0
        since = min(self._down_since.get(model, now), reading.died_at or now)
        self._down_since[model] = since
        return now - since

    async def _reading(self, spec: ModelSpec) -> Reading | None:
        """The model's reading, re-read when older than ``refresh_s`` (one reader at a time)."""
        async with self._lock:
            if self.clock() - self._read_at.get(spec.name, float("-inf")) < self.settings.refresh_s:
                return self._readings.get(spec.name)
            try:
                workers = await worker_health(self.client)
                reading = Reading(
                    healthy=workers.healthy[spec.name],
                    meant_to_run=await meant_to_run(self.client, spec.name),
                    oldest_wait_s=await oldest_interactive_wait_s(
                        self.client, self.queue, spec, self.clock() * 1000
                    ),
                    fallback_healthy=workers.healthy[spec.fallback or ""],
                    died_at=workers.died_at.get(spec.name),
                )
            except ServerError as exc:
                log.warning("fallback of %s: cannot read its signals: %s", spec.name, exc)
                self._readings.pop(spec.name, None)
            else:
                self._readings[spec.name] = reading
            self._read_at[spec.name] = self.clock()
            return self._readings.get(spec.name)

    def _say(
        self, spec: ModelSpec, reason: str | None, reading: Reading, down_for_s: float
    ) -> None:
        """Log when the route of ``spec``'s interactive jobs changes."""
        if self._reasons.get(spec.name) == reason:
            return
        self._reasons[spec.name] = reason
        if reason is None:
            log.info("%s: new interactive jobs go to %s again", spec.name, spec.name)
        else:
            why = (
                f"no healthy worker for {down_for_s:.0f} s"
                if reason == DOWN
                else f"its oldest interactive job has waited {reading.oldest_wait_s:.1f} s"
            )
            log.warning("%s: new interactive jobs go to %s (%s)", spec.name, spec.fallback, why)
