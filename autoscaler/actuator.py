"""Actuators: what turns a pool's desired replicas into running ones, behind one interface.

- :class:`LocalActuator`: ``inferq up``'s supervisor runs the workers; it reads each pool's
  decision from the registry (the loop records it) and says how many it runs.
- ``autoscaler.kubernetes.KubernetesActuator``: a Deployment's ``scale`` subresource.
- :class:`DryRunActuator`: only logs.
"""

from __future__ import annotations

import logging
from typing import Protocol

from queueing.connection import Client
from queueing.pools import read_running

log = logging.getLogger(__name__)


class Actuator(Protocol):
    """Runs a pool's replicas."""

    async def running(self, pool: str) -> int:
        """Replicas the pool runs now, started or starting."""
        ...

    async def scale(self, pool: str, replicas: int, reason: str) -> None:
        """Run ``replicas`` replicas of ``pool`` (stopping ones drain first)."""
        ...


class LocalActuator:
    """The supervisor of ``inferq up`` follows the decisions the loop records."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def running(self, pool: str) -> int:
        return (await read_running(self.client)).get(pool, 0)

    async def scale(self, pool: str, replicas: int, reason: str) -> None:
        """Nothing to do here: the supervisor reads the recorded decision."""


class DryRunActuator:
    """Logs what it would do; pretends it did."""

    def __init__(self) -> None:
        self.replicas: dict[str, int] = {}

    async def running(self, pool: str) -> int:
        return self.replicas.get(pool, 0)

    async def scale(self, pool: str, replicas: int, reason: str) -> None:
        if self.replicas.get(pool) != replicas:
            log.info("dry run: pool %s to %d replicas (%s)", pool, replicas, reason)
        self.replicas[pool] = replicas
