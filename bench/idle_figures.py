"""The idle bench's figures, from when each chat was submitted, had its images, and ran in the
engine: how much of the LLM worker's engine slot-time went unused while chats waited.

A slot counts as idle-waiting at time t when it runs nothing although a submitted chat has not
reached the engine yet (its images are being prepared: by the tier, or by the worker itself).
At most ``slots`` run at once (the worker holds no more), so the idle-waiting slot-seconds are
the integral of ``min(slots - running(t), waiting(t))``: a slot left empty because nothing is
left to run (the end of the stream) does not count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ChatTimes:
    """One chat's times (seconds, one clock): submitted, the worker's image step (reading the
    prepared images, or preparing them itself), and its run in the engine."""

    submitted: float
    images: tuple[float, float]
    engine: tuple[float, float]


def integrate(
    chats: Sequence[ChatTimes], start: float, end: float, f: Callable[[int, int], float]
) -> float:
    """The integral over [start, end] of ``f(running, waiting)``: ``running`` chats in the
    engine, ``waiting`` submitted and not yet in it."""
    events: list[tuple[float, int, int]] = []
    for chat in chats:
        events += [(chat.submitted, 0, 1), (chat.engine[0], 1, -1), (chat.engine[1], -1, 0)]
    events.sort()
    running = waiting = 0
    last, total = start, 0.0
    for at, d_running, d_waiting in events:
        at = min(max(at, start), end)
        total += (at - last) * f(running, waiting)
        last = at
        running += d_running
        waiting += d_waiting
    return total + (end - last) * f(running, waiting)


def idle_slot_seconds(chats: Sequence[ChatTimes], slots: int, start: float, end: float) -> float:
    """Slot-seconds in which a slot ran nothing while a chat waited for the engine."""
    return integrate(chats, start, end, lambda run, wait: max(0, min(slots - run, wait)))


def engine_idle_seconds(chats: Sequence[ChatTimes], start: float, end: float) -> float:
    """Seconds in which the engine ran nothing at all while a chat waited for it."""
    return integrate(chats, start, end, lambda run, wait: float(run == 0 and wait > 0))


def figures(chats: Sequence[ChatTimes], slots: int) -> dict[str, float]:
    """One side's figures over its run (first submission to last engine end)."""
    start = min(chat.submitted for chat in chats)
    end = max(chat.engine[1] for chat in chats)
    wall = end - start
    image_s = sum(chat.images[1] - chat.images[0] for chat in chats)
    engine_s = sum(chat.engine[1] - chat.engine[0] for chat in chats)
    return {
        "chats_s": len(chats) / wall,
        "idle_share": idle_slot_seconds(chats, slots, start, end) / (slots * wall),
        "engine_idle_share": engine_idle_seconds(chats, start, end) / wall,
        "image_wait_share": image_s / (slots * wall),
        "image_wait_ms": 1000 * image_s / len(chats),
        "busy_share": engine_s / (slots * wall),
        "seconds": wall,
    }
