"""Token coalescing: by count, by time, in order, and always at the end."""

from __future__ import annotations

import asyncio
import time

import pytest

from queueing.schemas import TokenLogprob
from workers.coalesce import TokenCoalescer


class Sink:
    """Records what was sent and when."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.sent: list[tuple[float, str]] = []
        self.logprobs: list[list[TokenLogprob]] = []
        self.delay_s = delay_s

    async def send(self, text: str, logprobs: list[TokenLogprob]) -> None:
        await asyncio.sleep(self.delay_s)
        self.sent.append((time.monotonic(), text))
        self.logprobs.append(logprobs)

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.sent]


async def test_flushes_every_n_tokens_and_at_the_end() -> None:
    sink = Sink()
    coalescer = TokenCoalescer(sink.send, flush_ms=10_000, flush_tokens=3)
    for i in range(7):
        await coalescer.add(f"t{i} ")
    assert sink.texts == ["t0 t1 t2 ", "t3 t4 t5 "]
    await coalescer.flush()
    assert sink.texts == ["t0 t1 t2 ", "t3 t4 t5 ", "t6 "]
    await coalescer.aclose()


async def test_a_lone_token_is_sent_after_flush_ms_without_more_input() -> None:
    sink = Sink()
    coalescer = TokenCoalescer(sink.send, flush_ms=30, flush_tokens=100)
    start = time.monotonic()
    await coalescer.add("only")
    await coalescer.add(" two")
    assert sink.texts == []
    for _ in range(100):
        if sink.sent:
            break
        await asyncio.sleep(0.01)
    assert sink.texts == ["only two"]
    assert 0.025 <= sink.sent[0][0] - start < 0.5
    await coalescer.aclose()


async def test_slow_sends_keep_order_and_lose_nothing() -> None:
    sink = Sink(delay_s=0.02)
    coalescer = TokenCoalescer(sink.send, flush_ms=5, flush_tokens=2)
    for i in range(20):
        await coalescer.add(str(i) + ",")
        await asyncio.sleep(0.003)
    await coalescer.flush()
    assert "".join(sink.texts) == "".join(f"{i}," for i in range(20))
    assert len(sink.texts) < 20
    await coalescer.aclose()


async def test_log_probabilities_travel_with_their_text() -> None:
    sink = Sink()
    coalescer = TokenCoalescer(sink.send, flush_ms=10_000, flush_tokens=2)
    entries = [TokenLogprob(token=t, logprob=-1.0) for t in "abc"]
    for entry in entries:
        await coalescer.add(entry.token, logprobs=[entry])
    await coalescer.flush()
    assert sink.texts == ["ab", "c"]
    assert sink.logprobs == [entries[:2], entries[2:]]
    await coalescer.aclose()


async def test_an_error_in_a_timed_send_surfaces_on_the_next_call() -> None:
    async def broken(text: str, logprobs: list[TokenLogprob]) -> None:
        raise ConnectionError("queue server went away")

    coalescer = TokenCoalescer(broken, flush_ms=5, flush_tokens=100)
    await coalescer.add("x")
    await asyncio.sleep(0.05)
    with pytest.raises(ConnectionError, match="went away"):
        await coalescer.add("y")
    await coalescer.aclose()
