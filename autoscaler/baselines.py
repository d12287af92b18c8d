"""Controllers for the simulator: ours (the live policy), the common baselines, the oracle.

- ``static``: a fixed count (for the peak, or the mean, of the trace).
- ``keda_queue_length``: KEDA's Redis-streams scaler on a consumer group's pending entries,
  ``pendingEntriesCount`` 5 per replica, polled every 30 s, fed to the HPA (10% tolerance,
  scale-up at most +100% or +4 pods per 15 s, scale-down stabilised over 300 s). Pending
  entries are those a greedy consumer group has read and not acknowledged: every job not yet
  finished (queued and in flight). (inferq's workers read only within their budget, so its
  own pending entries are the in-flight jobs alone: bounded by the budget, a scaler on them
  would never scale up; the bench gives KEDA the greedy count instead.) With
  ``minReplicaCount`` 0 KEDA activates on the same count; it polls every 30 s.
- ``ray_target_ongoing``: Ray Serve's default ``target_ongoing_requests`` 2 (queued and running
  requests per replica), averaged over 30 s, ``upscale_delay_s`` 30, ``downscale_delay_s``
  600, ``min_replicas`` 0 (requests wait at the handle while one starts).
- ``oracle``: knows the future: runs at every moment the replicas needed by any moment within
  the next start-up, each needed count being the next ``window_s`` of arrivals at full use.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from autoscaler.policy import Decision, Knobs, Pool, Signals, State, decide
from autoscaler.simulator import ReplicaModel, View


@dataclass
class Static:
    """Always ``replicas``."""

    replicas: int
    interval_s: float = 60.0

    def desired(self, view: View) -> int:
        return self.replicas


@dataclass
class Ours:
    """The live policy (:func:`autoscaler.policy.decide`) on one pool."""

    model: ReplicaModel
    knobs: Knobs
    min_replicas: int = 0
    interval_s: float = 2.0
    state: State = field(default_factory=State)
    decisions: list[Decision] = field(default_factory=list)

    def desired(self, view: View) -> int:
        pool = Pool(
            "pool",
            self.min_replicas,
            self.model.max_replicas,
            self.model.capacity,
            starting=view.starting,
            ready=view.ready,
        )
        signals = Signals(view.at, view.queued_units, view.inflight_units, view.arrived_units)
        decision = decide(signals, [pool], self.state, self.knobs)
        self.state = decision.state
        if decision.reason.startswith(("up", "down")):
            self.decisions.append(decision)
        return decision.desired["pool"]


@dataclass
class Keda:
    """KEDA (pending entries per replica) driving the HPA."""

    target: float = 5.0
    min_replicas: int = 0
    interval_s: float = 30.0
    stabilisation_s: float = 300.0
    tolerance: float = 0.1
    current: int = 0
    recommendations: deque[tuple[float, int]] = field(default_factory=deque)

    def desired(self, view: View) -> int:
        running = max(view.starting + view.ready, 1)
        ratio = (view.queued_jobs + view.inflight_jobs) / (self.target * running)
        want = running if abs(ratio - 1) <= self.tolerance else math.ceil(ratio * running)
        want = max(self.min_replicas, want)
        self.recommendations.append((view.at, want))
        while view.at - self.recommendations[0][0] > self.stabilisation_s:
            self.recommendations.popleft()
        if want > self.current:
            # HPA: +100% or +4 pods per 15 s, whichever is more; two periods per poll.
            self.current = min(want, max(2 * self.current, self.current + 4) * 2)
        else:
            self.current = max(w for _, w in self.recommendations)
        return self.current


@dataclass
class Ray:
    """Ray Serve's default request-based autoscaling."""

    target: float = 2.0
    look_back_s: float = 30.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    interval_s: float = 10.0  # Ray's metrics push period
    current: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    wanting_since: tuple[int, float] | None = None

    def desired(self, view: View) -> int:
        self.samples.append((view.at, view.queued_jobs + view.inflight_jobs))
        while view.at - self.samples[0][0] > self.look_back_s:
            self.samples.popleft()
        ongoing = sum(n for _, n in self.samples) / len(self.samples)
        want = math.ceil(ongoing / self.target - 1e-9)
        if self.current == 0 and view.queued_jobs:
            self.current = max(1, want)  # from zero at once, as Ray's handle does
            return self.current
        if want == self.current:
            self.wanting_since = None
            return self.current
        direction = 1 if want > self.current else -1
        if self.wanting_since is None or self.wanting_since[0] != direction:
            self.wanting_since = (direction, view.at)
        delay = self.upscale_delay_s if direction > 0 else self.downscale_delay_s
        if view.at - self.wanting_since[1] >= delay:
            self.current, self.wanting_since = want, None
        return self.current


@dataclass
class Oracle:
    """Knows every arrival: the replicas needed within the next start-up, asked for now."""

    model: ReplicaModel
    jobs: Sequence[tuple[float, float]]
    window_s: float = 10.0
    interval_s: float = 1.0
    _times: list[float] = field(default_factory=list)
    _cumulative: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        total = 0.0
        for at, units in self.jobs:
            total += units
            self._times.append(at)
            self._cumulative.append(total)

    def _arrived_by(self, t: float) -> float:
        i = bisect.bisect_right(self._times, t)
        return self._cumulative[i - 1] if i else 0.0

    def needed(self, t: float) -> int:
        """Replicas to serve the arrivals of ``[t, t + window_s)`` at full capacity."""
        work = self._arrived_by(t + self.window_s) - self._arrived_by(t)
        return math.ceil(work / self.window_s / self.model.capacity - 1e-9)

    def needed_ahead(self, t: float) -> int:
        """The most replicas needed at any moment from ``t`` to one start-up later."""
        ahead = range(0, int(self.model.startup_s) + 1, max(1, int(self.window_s / 2)))
        return max(self.needed(t + s) for s in ahead)

    def desired(self, view: View) -> int:
        # Never leave work waiting for want of a replica.
        floor = max(1, view.ready) if view.queued_jobs else 0
        return max(floor, self.needed_ahead(view.at))
