"""The API's Prometheus metrics, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

from api.usage_metrics import UsageCollector
from queueing.catalogue import Catalogue
from queueing.figures import read_figures
from queueing.jobstore import JobStore
from queueing.usage import read_totals


class Metrics:
    """Counters the routes update, and unit gauges read from Redis at scrape time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # No ``_created`` series beside every counter (a process-wide switch).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        self.submitted = Counter(
            "inferq_jobs_submitted",
            "Jobs accepted by the API",
            ["model", "job_class"],
            registry=registry,
        )
        self.rejections = Counter(
            "inferq_api_rejections", "Requests refused, by error code", ["code"], registry=registry
        )
        self.sse_clients = Gauge(
            "inferq_sse_clients", "Server-sent event streams open now", registry=registry
        )
        self.queued_units = Gauge(
            "inferq_queued_units", "Model units waiting in queues", ["model"], registry=registry
        )
        self.inflight_units = Gauge(
            "inferq_inflight_units", "Model units running on workers", ["model"], registry=registry
        )
        self.usage = UsageCollector()
        registry.register(self.usage)

    async def render(self, store: JobStore, catalogue: Catalogue) -> bytes:
        """The text exposition, with unit gauges refreshed from the queue."""
        figures = await read_figures(store.client, store.settings, catalogue.names())
        for model, now in figures.items():
            self.queued_units.labels(model=model).set(now.queued_units)
            self.inflight_units.labels(model=model).set(now.inflight_units)
        self.usage.rows = await read_totals(store.client, store.settings)
        return generate_latest(self.registry)
