"""Per-model queue figures: sums over a model's partitions, read in one pipelined pass.

``inferq status``, the metrics and the workers read them here (the autoscaler will too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from queueing import keys
from queueing.calls import COUNTERS
from queueing.connection import Client
from queueing.errors import translated
from queueing.keys import JobClass
from queueing.schemas import JobStatus
from queueing.settings import QueueSettings

_FINISHED = [s.value for s in JobStatus if s.terminal]


@dataclass(frozen=True)
class QueueFigure:
    """One class and band of a model, summed over its partitions."""

    job_class: JobClass
    band: int
    jobs: int
    units: float


@dataclass
class ModelFigures:
    """A model's queue right now: queued and in-flight work, arrivals, finished jobs."""

    model: str
    queued_units: float = 0.0
    queued_jobs: int = 0
    inflight_units: float = 0.0
    inflight_jobs: int = 0
    arrivals: int = 0
    arrived_units: float = 0.0
    finished: dict[str, int] = field(default_factory=dict)
    queues: list[QueueFigure] = field(default_factory=list)
    partition_units: list[float] = field(default_factory=list)
    # Jobs with images waiting for (or in) the preprocess tier: not yet queued units.
    preparing_units: float = 0.0
    preparing_jobs: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``inferq status --json``)."""
        return {
            "model": self.model,
            "queued_jobs": self.queued_jobs,
            "queued_units": self.queued_units,
            "inflight_jobs": self.inflight_jobs,
            "inflight_units": self.inflight_units,
            "arrivals": self.arrivals,
            "arrived_units": self.arrived_units,
            "finished": self.finished,
            "partition_units": self.partition_units,
            "preparing_jobs": self.preparing_jobs,
            "preparing_units": self.preparing_units,
            "queues": [
                {"class": str(q.job_class), "band": q.band, "jobs": q.jobs, "units": q.units}
                for q in self.queues
            ],
        }


def _tidy(value: float) -> float:
    return round(value, 4) + 0.0  # + 0.0 turns -0.0 into 0.0


def totals(counters: list[dict[str, str]]) -> dict[str, float]:
    """Each counter summed over the partitions' units hashes."""
    sums: dict[str, float] = {}
    for raw in counters:
        for name, value in raw.items():
            sums[name] = sums.get(name, 0.0) + float(value)
    return {name: _tidy(value) for name, value in sums.items()}


def summed(model: str, counters: list[dict[str, str]]) -> ModelFigures:
    """Figures of ``model`` from each partition's units hash."""
    total = totals(counters)
    queues = []
    for job_class in JobClass:
        prefix = f"{COUNTERS['JOBS_OF']}{job_class.value}:"
        for band in sorted(int(f.removeprefix(prefix)) for f in total if f.startswith(prefix)):
            qfield = keys.queue_field(job_class, band)
            jobs = int(total.get(COUNTERS["JOBS_OF"] + qfield, 0))
            units = total.get(COUNTERS["UNITS_OF"] + qfield, 0.0)
            if jobs or units:
                queues.append(QueueFigure(job_class, band, jobs, units))
    finished = {status: int(total.get(status, 0)) for status in _FINISHED}
    queued_jobs = sum(q.jobs for q in queues)
    arrivals = int(total.get(COUNTERS["ARRIVALS"], 0))
    preparing = int(total.get(COUNTERS["PRE_JOBS"], 0))
    return ModelFigures(
        model=model,
        queued_units=total.get(COUNTERS["QUEUED"], 0.0),
        queued_jobs=queued_jobs,
        inflight_units=total.get(COUNTERS["INFLIGHT"], 0.0),
        # Every arrival is preparing, queued, in flight or finished (a release re-queues).
        inflight_jobs=max(0, arrivals - preparing - queued_jobs - sum(finished.values())),
        arrivals=arrivals,
        arrived_units=total.get(COUNTERS["ARRIVED_UNITS"], 0.0),
        finished=finished,
        queues=queues,
        partition_units=[_tidy(float(raw.get(COUNTERS["QUEUED"], 0))) for raw in counters],
        preparing_units=total.get(COUNTERS["PRE_UNITS"], 0.0),
        preparing_jobs=preparing,
    )


async def read_counters(
    client: Client, settings: QueueSettings, models: Iterable[str]
) -> dict[str, list[dict[str, str]]]:
    """Each model's partitions' units hashes, from one pipeline (one round trip per node)."""
    wanted = [(m, p) for m in models for p in range(settings.partitions_of(m))]
    with translated("cannot read the queue's figures"):
        async with client.pipeline(transaction=False) as pipe:
            for model, partition in wanted:
                pipe.hgetall(keys.units(model, partition))
            replies: list[dict[str, str]] = await pipe.execute()
    by_model: dict[str, list[dict[str, str]]] = {}
    for (model, _), raw in zip(wanted, replies, strict=True):
        by_model.setdefault(model, []).append(raw)
    return by_model


async def read_figures(
    client: Client, settings: QueueSettings, models: Iterable[str]
) -> dict[str, ModelFigures]:
    """Each model's figures (one pipelined read: one round trip per node)."""
    counters = await read_counters(client, settings, models)
    return {model: summed(model, raw) for model, raw in counters.items()}
