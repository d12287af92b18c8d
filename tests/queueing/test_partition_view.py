"""The worker's view of the partitions: scores with ageing, batch aged within its class."""

from __future__ import annotations

from queueing.partition_view import PartitionView

BATCH_FROM = 8  # three classes of four bands: ranks 8..11 are batch


def test_old_batch_work_never_ranks_above_fresh_standard_work() -> None:
    view = PartitionView(ageing_ms=100, batch_from=BATCH_FROM)
    view.set(0, 11, enqueued_ms=0.0)  # batch, dearest band, an hour old
    view.set(1, 7, enqueued_ms=3_600_000.0)  # standard, dearest band, just arrived
    view.set(2, 8, enqueued_ms=3_600_000.0)  # batch, cheapest band, just arrived
    assert [p for _, p in view.ranked(3_600_000.0)] == [1, 0, 2]
    assert view.score(0, 3_600_000.0) == BATCH_FROM - 0.5
    assert view.above_batch_waits()


def test_higher_classes_still_age_past_each_other() -> None:
    view = PartitionView(ageing_ms=100, batch_from=BATCH_FROM)
    view.set(0, 4, enqueued_ms=0.0)  # standard, ten periods old
    view.set(1, 0, enqueued_ms=1_000.0)  # interactive, fresh
    assert [p for _, p in view.ranked(1_000.0)] == [0, 1]


def test_only_batch_waiting_is_not_higher_work() -> None:
    view = PartitionView(ageing_ms=100, batch_from=BATCH_FROM)
    assert not view.above_batch_waits()
    view.arrived(3, 9, 5.0)
    assert not view.above_batch_waits()
    view.arrived(3, 2, 6.0)
    assert view.above_batch_waits()
    view.set(3, -1, 0.0)
    assert view.empty and not view.above_batch_waits()


def test_a_partition_is_visited_when_reserved_credit_there_is_due() -> None:
    view = PartitionView(ageing_ms=10_000, batch_from=BATCH_FROM)
    view.set(0, 4, enqueued_ms=0.0)  # the oldest standard job
    view.set(1, 4, enqueued_ms=500.0, due=(4, 2_000.0))  # a reserved tenant's credit at 2 s
    view.set(2, 0, enqueued_ms=1_900.0)  # interactive: more urgent than any standard job
    assert [p for _, p in view.ranked(1_999.0)] == [2, 0, 1] and not view.nudged(1, 1_999.0)
    assert [p for _, p in view.ranked(2_000.0)] == [2, 1, 0] and view.nudged(1, 2_000.0)
    view.set(1, 4, enqueued_ms=500.0, due=(4, 5_000.0))  # the credit spent: due again later
    assert [p for _, p in view.ranked(2_000.0)] == [2, 0, 1]
    view.set(1, -1, 0.0, due=(4, 0.0))  # nothing waits there
    assert not view.nudged(1, 10_000.0)
