"""The autoscaler's Prometheus metrics: each pool's replicas, need and decisions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from autoscaler.signals import PoolReading
from queueing.pools import PoolDecision


class AutoscalerMetrics:
    """Gauges per pool, a counter of decisions that changed something."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["pool", "model"]
        self.desired = Gauge(
            "inferq_pool_desired_replicas",
            "Replicas the autoscaler wants",
            labels,
            registry=self.registry,
        )
        self.ready = Gauge(
            "inferq_pool_ready_replicas",
            "Workers alive and healthy",
            labels,
            registry=self.registry,
        )
        self.starting = Gauge(
            "inferq_pool_starting_replicas",
            "Replicas started, not yet beating",
            labels,
            registry=self.registry,
        )
        self.unhealthy = Gauge(
            "inferq_pool_unhealthy_replicas",
            "Workers stalled or stale",
            labels,
            registry=self.registry,
        )
        self.need = Gauge(
            "inferq_pool_need_units_per_second",
            "Capacity the policy asks for",
            labels,
            registry=self.registry,
        )
        self.arrivals = Gauge(
            "inferq_pool_arrival_units_per_second",
            "Smoothed arrival rate",
            labels,
            registry=self.registry,
        )
        self.decisions = Counter(
            "inferq_autoscaler_decisions",
            "Decisions that changed a pool's size",
            ["pool", "direction"],
            registry=self.registry,
        )

    def record(self, decision: PoolDecision, reading: PoolReading, starting: int) -> None:
        """One pool's figures after a decision."""
        labels = (decision.pool, decision.model)
        self.desired.labels(*labels).set(decision.desired)
        self.ready.labels(*labels).set(reading.ready)
        self.starting.labels(*labels).set(starting)
        self.unhealthy.labels(*labels).set(reading.unhealthy)
        self.need.labels(*labels).set(decision.need_units_s)
        self.arrivals.labels(*labels).set(decision.arrival_units_s)
        direction = decision.reason.split(" ", 1)[0]
        if direction in ("up", "down"):
            self.decisions.labels(decision.pool, direction).inc()
