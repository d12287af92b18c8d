"""The idle bench's figures: slot-seconds left idle while chats waited for the engine."""

from __future__ import annotations

import pytest

from bench.idle_figures import ChatTimes, engine_idle_seconds, figures, idle_slot_seconds


def chat(submitted: float, engine: tuple[float, float], images: float = 0.0) -> ChatTimes:
    """A chat whose image step took ``images`` seconds and ended as the engine started it."""
    return ChatTimes(submitted, (engine[0] - images, engine[0]), engine)


def test_slots_kept_full_leave_nothing_idle() -> None:
    # Two slots, four chats submitted at 0: two run 0-1, the next two 1-2.
    chats = [chat(0, (0, 1)), chat(0, (0, 1)), chat(0, (1, 2)), chat(0, (1, 2))]
    assert idle_slot_seconds(chats, 2, 0, 2) == 0
    assert engine_idle_seconds(chats, 0, 2) == 0
    got = figures(chats, 2)
    assert got["idle_share"] == 0 and got["busy_share"] == 1 and got["chats_s"] == 2


def test_a_slot_held_while_its_chat_is_prepared_counts_as_idle() -> None:
    # Two slots; each chat waits 0.5 s for its image before its 1 s in the engine.
    chats = [chat(0, (0.5, 1.5), 0.5), chat(0, (0.5, 1.5), 0.5), chat(0, (2.0, 3.0), 0.5)]
    # 0-0.5: both slots idle, 3 chats waiting: 2 slots x 0.5 s; 1.5-2.0: both slots free,
    # 1 chat waiting: 1 x 0.5 s; 2.0-3.0: one slot free, nothing waiting: 0.
    assert idle_slot_seconds(chats, 2, 0, 3) == pytest.approx(1.5)
    assert engine_idle_seconds(chats, 0, 3) == pytest.approx(1.0)
    got = figures(chats, 2)
    assert got["idle_share"] == pytest.approx(1.5 / 6)
    assert got["engine_idle_share"] == pytest.approx(1 / 3)
    assert got["image_wait_ms"] == pytest.approx(500)
    assert got["image_wait_share"] == pytest.approx(1.5 / 6)


def test_empty_slots_with_nothing_waiting_are_not_idle_waiting() -> None:
    # One chat at a time arrives after the last one ended: the other slot has nothing to run.
    chats = [chat(0, (0, 1)), chat(2, (2, 3))]
    assert idle_slot_seconds(chats, 2, 0, 3) == 0
    assert engine_idle_seconds(chats, 0, 3) == 0  # 1-2: idle, but nothing was waiting
    assert figures(chats, 2)["busy_share"] == pytest.approx(2 / 6)


def test_the_window_clips_events_outside_it() -> None:
    chats = [chat(0, (1, 4))]
    assert idle_slot_seconds(chats, 1, 0.5, 3) == pytest.approx(0.5)
    assert engine_idle_seconds(chats, 2, 3) == 0
