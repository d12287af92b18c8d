"""Replay a trace against a pool of simulated replicas under one scaling controller.

A replica serves ``capacity`` units/s shared by its in-flight jobs (continuous batching:
processor sharing), claims from the queue while its in-flight units stay under its budget
(``budget_s`` of capacity, as a calibrated worker does), serves only ``startup_s`` after it
was asked for, and on scale-down stops claiming and drains its share before it goes. A
replica costs from the moment it is asked for until it is gone. A job's queue wait is the
time from its arrival until a replica claims it.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ReplicaModel:
    """A replica type: capacity (units/s), start-up delay, in-flight budget, and the most
    replicas any controller may run."""

    capacity: float
    startup_s: float
    budget_s: float = 4.0
    max_replicas: int = 64


@dataclass(frozen=True)
class View:
    """What a controller sees at a decision: the queue's counters and the replicas."""

    at: float
    queued_units: float
    queued_jobs: int
    inflight_units: float
    inflight_jobs: int
    arrived_units: float
    starting: int
    ready: int


class Controller(Protocol):
    """A scaling policy under simulation: decides every ``interval_s`` seconds."""

    interval_s: float

    def desired(self, view: View) -> int:
        """Replicas to run (starting and ready)."""
        ...


@dataclass
class Outcome:
    """Replica-seconds paid and every job's queue wait."""

    replica_seconds: float = 0.0
    waits: list[float] = field(default_factory=list)
    peak_replicas: int = 0


@dataclass
class _Pool:
    model: ReplicaModel
    starting: list[float] = field(default_factory=list)  # when each becomes ready
    ready: int = 0
    draining: list[float] = field(default_factory=list)  # when each is gone

    def alive(self) -> int:
        return len(self.starting) + self.ready + len(self.draining)

    def scale(self, want: int, now: float, inflight_units: float) -> None:
        want = max(0, min(self.model.max_replicas, want))
        have = len(self.starting) + self.ready
        if want > have:
            self.starting += [now + self.model.startup_s] * (want - have)
            return
        for _ in range(have - want):
            if self.starting:
                self.starting.pop()  # a replica not yet serving stops at once
            else:
                share = inflight_units / self.ready / self.model.capacity
                self.ready -= 1
                self.draining.append(now + share)

    def tick(self, now: float) -> None:
        came = [t for t in self.starting if t <= now]
        self.starting = [t for t in self.starting if t > now]
        self.ready += len(came)
        self.draining = [t for t in self.draining if t > now]


def simulate(
    jobs: Sequence[tuple[float, float]],
    controller: Controller,
    model: ReplicaModel,
    *,
    initial: int = 0,
    dt: float = 0.5,
    tail_s: float = 300.0,
) -> Outcome:
    """Replay ``jobs`` (arrival seconds, units; sorted) under ``controller``, starting with
    ``initial`` replicas ready (the trace joins a service already running)."""
    pool, out = _Pool(model, ready=initial), Outcome()
    queue: deque[tuple[float, float]] = deque()
    finish: list[float] = []  # virtual finish times (processor sharing)
    virtual = finish_sum = arrived = 0.0
    end = (jobs[-1][0] if jobs else 0.0) + tail_s
    next_job, next_decision, now = 0, 0.0, 0.0
    while now < end:
        now += dt
        while next_job < len(jobs) and jobs[next_job][0] <= now:
            queue.append(jobs[next_job])
            arrived += jobs[next_job][1]
            next_job += 1
        pool.tick(now)
        budget = (pool.ready + len(pool.draining)) * model.capacity * dt
        while finish and budget > 0:
            n = len(finish)
            need = (finish[0] - virtual) * n
            if need <= budget:
                budget -= need
                virtual = heapq.heappop(finish)
                finish_sum -= virtual
            else:
                virtual += budget / n
                budget = 0
        inflight = max(0.0, finish_sum - virtual * len(finish))
        room = pool.ready * model.capacity * model.budget_s
        while queue and pool.ready and (inflight + queue[0][1] <= room or not finish):
            at, units = queue.popleft()
            out.waits.append(now - at)
            heapq.heappush(finish, virtual + units)
            finish_sum += virtual + units
            inflight += units
        if now >= next_decision:
            next_decision = now + controller.interval_s
            view = View(
                at=now,
                queued_units=sum(u for _, u in queue),
                queued_jobs=len(queue),
                inflight_units=inflight,
                inflight_jobs=len(finish),
                arrived_units=arrived,
                starting=len(pool.starting),
                ready=pool.ready,
            )
            pool.scale(controller.desired(view), now, inflight)
        out.replica_seconds += pool.alive() * dt
        out.peak_replicas = max(out.peak_replicas, pool.alive())
    out.waits += [end - at for at, _ in queue]
    out.waits += [end - at for at, _ in jobs[next_job:]]
    return out
