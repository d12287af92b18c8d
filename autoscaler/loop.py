"""The autoscaler process: while it holds the lease, read the signals, decide per model,
scale each pool, and record (log, registry, metrics) every decision with its reason."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from autoscaler.actuator import Actuator
from autoscaler.metrics import AutoscalerMetrics
from autoscaler.policy import Knobs, State, decide
from autoscaler.signals import pool_view, read_snapshot
from queueing.connection import Client
from queueing.errors import ServerError
from queueing.pools import PoolDecision, publish_decision, release_lease, take_lease
from queueing.settings import AutoscalerSettings, Settings

log = logging.getLogger(__name__)


def knobs_of(settings: AutoscalerSettings) -> Knobs:
    """The policy's knobs as the settings give them."""
    return Knobs(
        target_utilisation=settings.target_utilisation,
        drain_s=settings.drain_s,
        startup_s=settings.startup_s,
        scale_down_window_s=settings.scale_down_window_s,
        idle_to_zero_s=settings.idle_to_zero_s,
        hysteresis=settings.hysteresis,
        predictive=settings.predictive,
    )


class Autoscaler:
    """Sizes every pool in the settings through ``actuator``."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        actuator: Actuator,
        name: str,
        metrics: AutoscalerMetrics | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.actuator = actuator
        self.name = name
        self.metrics = metrics
        self.knobs = knobs_of(settings.autoscaler)
        self.states: dict[str, State] = defaultdict(State)
        self.reasons: dict[str, str] = {}

    async def step(self) -> list[PoolDecision]:
        """One reading, one decision per model, every pool scaled and recorded."""
        snapshot = await read_snapshot(self.client, self.settings)
        by_model: dict[str, list[str]] = defaultdict(list)
        for name, reading in snapshot.pools.items():
            by_model[reading.model].append(name)
        decisions = []
        for model, names in sorted(by_model.items()):
            running = {name: await self.actuator.running(name) for name in names}
            views = [pool_view(snapshot.pools[n], self.settings, running[n]) for n in names]
            decision = decide(snapshot.signals(model), views, self.states[model], self.knobs)
            self.states[model] = decision.state
            for view in views:
                want = decision.desired[view.name]
                record = PoolDecision(
                    pool=view.name,
                    model=model,
                    desired=want,
                    reason=decision.reason,
                    at=snapshot.at,
                    need_units_s=round(decision.need, 4),
                    arrival_units_s=round(decision.rate, 4),
                )
                await self.actuator.scale(view.name, want, decision.reason)
                await publish_decision(self.client, record)
                if self.reasons.get(
                    view.name
                ) != decision.reason and not decision.reason.startswith("hold"):
                    log.info("pool %s: %s", view.name, decision.reason)
                self.reasons[view.name] = decision.reason
                if self.metrics is not None:
                    self.metrics.record(record, snapshot.pools[view.name], view.starting)
                decisions.append(record)
        return decisions

    async def run(self, stop: asyncio.Event) -> None:
        """Act while holding the lease; otherwise wait for it. Until ``stop`` is set."""
        interval = self.settings.autoscaler.interval_s
        ttl = self.settings.autoscaler.lease_ttl_s
        leading = False
        try:
            while not stop.is_set():
                try:
                    held = await take_lease(self.client, self.name, ttl)
                    if held != leading:
                        log.info(
                            "autoscaler %s %s the lease", self.name, "took" if held else "lost"
                        )
                        leading = held
                    if held:
                        await self.step()
                except ServerError as exc:
                    log.warning("autoscaler step failed: %s", exc)
                # A waiting instance looks often, so that it takes over within a second of expiry.
                wait = interval if leading else min(interval, ttl / 5)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            if leading:
                with contextlib.suppress(ServerError):
                    await release_lease(self.client, self.name)
