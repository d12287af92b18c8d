"""What a worker knows of each partition's best waiting job, and how the partitions rank."""

from __future__ import annotations

import math


class PartitionView:
    """Per partition: the queue rank (class major, band minor) and enqueue time (ms) of its
    best waiting job. A job's score is its rank less its age in ageing periods, as inside
    one partition; the lowest score is served first. Ranks from ``batch_from`` on (the
    batch class) age only within their class: their score never drops below
    ``batch_from - 0.5``, so batch work never overtakes a waiting job of a higher class."""

    def __init__(self, ageing_ms: float, batch_from: int | None = None) -> None:
        self.ageing_ms = ageing_ms
        self.batch_from = batch_from
        self._best: dict[int, tuple[int, float]] = {}
        # Partitions where a tenant joined others (rank of its job): visited next within that
        # rank, since each partition shares its own queues between tenants and the claim
        # otherwise visits partitions by their oldest job, however young the newcomer's is.
        self._joined: dict[int, tuple[int, float]] = {}  # partition -> rank, when (ms)
        # Partitions where a tenant with a reservation waits: the rank of its best job and
        # when its credit there is next positive (ms). Credit accrues per partition, so a
        # partition is visited when its credit is due, whatever the age of its oldest job.
        self._due: dict[int, tuple[int, float]] = {}

    @property
    def empty(self) -> bool:
        """True when no partition is known to hold work."""
        return not self._best

    def set(
        self,
        partition: int,
        rank: int,
        enqueued_ms: float,
        *,
        picked_at: float | None = None,
        due: tuple[int, float] = (-1, 0.0),
    ) -> None:
        """What the server just said of ``partition`` (``rank`` -1: nothing waits there);
        ``picked_at``: when a pick that delivered jobs there started (ms): a tenant that joined
        before then has had its turn; ``due``: the rank of a reserved tenant's best job there
        (-1: none waits) and when its credit is next positive (ms)."""
        joined = self._joined.get(partition)
        if joined and (rank < 0 or (picked_at is not None and joined[1] <= picked_at)):
            del self._joined[partition]
        if rank < 0:
            self._best.pop(partition, None)
        else:
            self._best[partition] = (rank, enqueued_ms)
        if rank < 0 or due[0] < 0:
            self._due.pop(partition, None)
        else:
            self._due[partition] = due

    def arrived(
        self, partition: int, rank: int, enqueued_ms: float, *, joined: bool = False
    ) -> None:
        """A job of ``rank`` arrived: it is the partition's best if it beats what is known;
        ``joined``: its tenant joined other tenants waiting there."""
        if joined:
            known = self._joined.get(partition)
            self._joined[partition] = (min(rank, known[0]) if known else rank, enqueued_ms)
        known = self._best.get(partition)
        if known is None or self._score(rank, enqueued_ms, enqueued_ms) < self._score(
            *known, enqueued_ms
        ):
            self._best[partition] = (rank, enqueued_ms)

    def _score(self, rank: int, enqueued_ms: float, now_ms: float) -> float:
        score = rank - (now_ms - enqueued_ms) / self.ageing_ms
        if self.batch_from is not None and rank >= self.batch_from:
            return max(score, self.batch_from - 0.5)
        return score

    def above_batch_waits(self) -> bool:
        """True when some partition's best waiting job is of a class above batch."""
        limit = math.inf if self.batch_from is None else self.batch_from
        return any(rank < limit for rank, _ in self._best.values())

    def score(self, partition: int, now_ms: float) -> float:
        """The partition's best score (infinite when nothing is known to wait there)."""
        known = self._best.get(partition)
        return math.inf if known is None else self._score(*known, now_ms)

    def nudged(self, partition: int, now_ms: float) -> bool:
        """A tenant joined others in ``partition`` since a claim last picked there, or a
        reserved tenant's credit there is due."""
        return partition in self._nudges(now_ms)

    def _nudges(self, now_ms: float) -> dict[int, int]:
        """Partitions to visit before their turn: the rank of the job that calls for it."""
        nudges = {p: rank for p, (rank, _) in self._joined.items()}
        for partition, (rank, due_ms) in self._due.items():
            if due_ms <= now_ms:
                nudges[partition] = min(rank, nudges.get(partition, rank))
        return nudges

    def ranked(self, now_ms: float) -> list[tuple[float, int]]:
        """``(score, partition)`` of every partition known to hold work, best first; a
        partition where a tenant joined or reserved credit is due goes just before those whose
        best job is of its job's rank or a lower one (never before more urgent work)."""
        scores = {p: self._score(r, t, now_ms) for p, (r, t) in self._best.items()}
        for partition, rank in self._nudges(now_ms).items():
            if partition in scores:
                peers = [scores[p] for p, (r, _) in self._best.items() if r >= rank]
                scores[partition] = min([scores[partition], *(s - 1e-9 for s in peers)])
        return sorted((score, p) for p, score in scores.items())
