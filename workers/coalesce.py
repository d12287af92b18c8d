"""Coalesce token deltas so that a fast engine does not turn every token into a round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from queueing.schemas import TokenLogprob

Send = Callable[[str, list[TokenLogprob]], Awaitable[None]]


class TokenCoalescer:
    """Buffers text (and its tokens' log probabilities, if any) and sends it every
    ``flush_ms`` or every ``flush_tokens`` tokens.

    Sends never overlap and keep their order; :meth:`flush` sends what is left (call it at
    the end). An error raised by a timed send is raised again by the next call.
    """

    def __init__(self, send: Send, *, flush_ms: int, flush_tokens: int) -> None:
        self._send = send
        self._delay_s = flush_ms / 1000
        self._flush_tokens = max(1, flush_tokens)
        self._parts: list[str] = []
        self._logprobs: list[TokenLogprob] = []
        self._tokens = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._error: Exception | None = None

    async def add(
        self, text: str, tokens: int = 1, logprobs: list[TokenLogprob] | None = None
    ) -> None:
        """Buffer ``text`` (worth ``tokens`` tokens); send once enough has gathered."""
        self._raise()
        self._parts.append(text)
        self._logprobs += logprobs or []
        self._tokens += tokens
        if self._tokens >= self._flush_tokens:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())

    async def flush(self) -> None:
        """Send everything buffered now."""
        self._raise()
        self._cancel_timer()
        async with self._lock:
            if not self._parts:
                return
            text, logprobs = "".join(self._parts), self._logprobs
            self._parts, self._logprobs = [], []
            self._tokens = 0
            await self._send(text, logprobs)

    async def aclose(self) -> None:
        """Drop the timer and wait for a send in progress; buffered text is discarded."""
        self._cancel_timer()
        async with self._lock:
            self._parts, self._logprobs = [], []
            self._tokens = 0

    def _cancel_timer(self) -> None:
        if self._timer is not None:  # only ever cancelled while it sleeps
            self._timer.cancel()
            self._timer = None

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._delay_s)
        self._timer = None
        try:
            await self.flush()
        except Exception as exc:  # surfaced by the next add/flush
            self._error = exc
