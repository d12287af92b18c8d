"""Which partition a new job goes to."""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Iterator

from queueing.settings import QueueSettings


class Placement:
    """Round robin over a model's partitions, from a random start in each process.

    Round robin spreads a backlog evenly by count at no cost on the hot path (the less loaded
    of two random choices would need a read of both partitions' counters per job, or a
    cached view of them). A job with an idempotency key goes where the tenant and key hash
    to, so its key and the job share a slot and the enqueue stays one call.
    """

    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings
        self._turns: dict[str, Iterator[int]] = {}

    def choose(self, model: str, tenant: str, idempotency_key: str | None = None) -> int:
        """The partition of ``model`` for a new job of ``tenant``."""
        count = self.settings.partitions_of(model)
        if idempotency_key is not None:
            return zlib.crc32(f"{tenant}\0{idempotency_key}".encode()) % count
        turn = self._turns.get(model)
        if turn is None:
            start = random.randrange(count)
            turn = self._turns[model] = itertools.cycle([*range(start, count), *range(start)])
        return next(turn)
