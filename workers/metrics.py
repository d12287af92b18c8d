"""A worker's Prometheus metrics: a registry of its own, served over HTTP from a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from queueing.processes import advertised_url
from workers.heartbeat import Load, Progress
from workers.steps import StepClock

OUTCOMES = ("succeeded", "failed", "cancelled", "released", "preempted")


class _Live:
    """Values read from the worker at scrape time: load, tokens, token rate, budget, and the
    engine's steps, recent step time and whether the watchdog finds it stalled."""

    def __init__(
        self,
        model: str,
        progress: Progress,
        load: Callable[[], Load],
        unit_budget: float,
        steps: StepClock,
        stalled: Callable[[], bool],
    ) -> None:
        self.model = model
        self.progress = progress
        self.load = load
        self.unit_budget = unit_budget
        self.steps = steps
        self.stalled = stalled

    def collect(self) -> Iterator[Metric]:
        """The gauges and the token counter, as they are now."""
        load, rate = self.load(), self.progress.tokens_per_s()
        values: list[tuple[str, str, float]] = [
            ("inferq_worker_inflight_units", "Model units in flight on this worker", load.units),
            ("inferq_worker_inflight_jobs", "Jobs in flight on this worker", load.jobs),
            ("inferq_worker_tokens_per_second", "Output tokens per second", rate),
            ("inferq_worker_unit_budget", "Units this worker may hold in flight", self.unit_budget),
            ("inferq_worker_step_seconds", "Longest recent engine step", self.steps.pace_s()),
            (
                "inferq_worker_stalled",
                "1 while the engine makes no step and the worker claims nothing",
                float(self.stalled()),
            ),
        ]
        for name, doc, value in values:
            gauge = GaugeMetricFamily(name, doc, labels=["model"])
            gauge.add_metric([self.model], value)
            yield gauge
        tokens = CounterMetricFamily(
            "inferq_worker_output_tokens", "Output tokens generated", labels=["model"]
        )
        tokens.add_metric([self.model], self.progress.tokens)
        yield tokens
        steps = CounterMetricFamily(
            "inferq_worker_engine_steps", "Engine steps that produced output", labels=["model"]
        )
        steps.add_metric([self.model], self.steps.count)
        yield steps


class MetricsEndpoint:
    """A registry of its own, served over HTTP from a thread: :meth:`start` serves
    ``/metrics`` (port 0 picks a free one); :meth:`stop` shuts it down."""

    def __init__(self) -> None:
        # No ``_created`` series beside every counter (a process-wide switch).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.url: str | None = None
        self._server: WSGIServer | None = None

    def start(self, host: str, port: int) -> str:
        """Serve the metrics on ``host:port`` from a thread; returns the ``/metrics`` URL."""
        server, _ = start_http_server(port, host, registry=self.registry)
        self._server = server
        self.url = f"{advertised_url(host, server.server_port)}/metrics"
        return self.url

    def stop(self) -> None:
        """Stop serving and close the port (blocks until the server thread has ended)."""
        server, self._server = self._server, None
        if server is None:
            return
        stopping = threading.Thread(target=server.shutdown)
        stopping.start()
        # Wake the thread's select() now rather than at its next 0.5 s poll (Linux).
        with contextlib.suppress(OSError):
            server.socket.shutdown(socket.SHUT_RDWR)
        stopping.join()
        server.server_close()


class WorkerMetrics(MetricsEndpoint):
    """Gauges read from the worker at scrape time, and job outcome counts it reports."""

    def __init__(
        self,
        model: str,
        progress: Progress,
        load: Callable[[], Load],
        unit_budget: float,
        steps: StepClock,
        stalled: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.model = model
        self.registry.register(_Live(model, progress, load, unit_budget, steps, stalled))
        self.jobs = Counter(
            "inferq_worker_jobs_finished",
            "Jobs that left this worker, by outcome",
            ["model", "outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.jobs.labels(model=model, outcome=outcome)

    def job_finished(self, outcome: str) -> None:
        """Count one job that ended as ``outcome`` (one of :data:`OUTCOMES`)."""
        self.jobs.labels(model=self.model, outcome=outcome).inc()
