"""A deterministic engine for tests of the worker loop (never for serving)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import astuple

from workers.engine import EngineDelta, EngineError, EngineRequest
from workers.steps import StepClock


def script(prompt: str, max_tokens: int) -> list[str]:
    """The deltas the engine produces: the prompt's words, cycled, ``max_tokens`` of them."""
    words = prompt.split() or ["_"]
    return [("" if i == 0 else " ") + words[i % len(words)] for i in range(max_tokens)]


class ScriptedEngine:
    """Streams :func:`script` with a per-token delay; aborts at once; fails on markers.

    A prompt containing ``fail_marker`` raises a non-retryable :class:`EngineError`,
    ``retry_marker`` a retryable one (only its first ``fail_times`` runs when that is set),
    and ``crash_marker`` a plain ``RuntimeError`` (a bug, as the worker sees it).
    It runs any number of requests at once, but says it has ``slots``.
    Errors come after ``fail_after`` tokens. Every token of any request is one engine
    step (also when the request streams no deltas); ``token_delay_s`` may change while it
    runs, to slow the steps down. :meth:`freeze` makes it hang like a stuck engine: no more
    output, aborts ignored, new requests never start; :meth:`kill` makes it a dead one.
    """

    def __init__(
        self,
        *,
        token_delay_s: float = 0.0,
        fail_marker: str = "[fail]",
        retry_marker: str = "[retry]",
        crash_marker: str = "[crash]",
        fail_times: int | None = None,
        fail_after: int = 0,
        slots: int = 64,
    ) -> None:
        self.token_delay_s = token_delay_s
        self.fail_marker = fail_marker
        self.retry_marker = retry_marker
        self.crash_marker = crash_marker
        self.fail_times = fail_times
        self.fail_after = fail_after
        self.slots = slots
        self.started: list[str] = []
        self.aborted: list[str] = []
        self.finished: list[str] = []
        self.images: dict[str, list[bytes]] = {}  # the images each request came with
        self.peak_running = 0
        self._aborts: dict[str, asyncio.Event] = {}
        self._failures: Counter[str] = Counter()
        self._frozen = asyncio.Event()
        self._steps = StepClock()
        self._dead = False
        self._prefilling: dict[str, int] = {}

    def freeze(self) -> None:
        """Hang from now on: every request stops producing output, for good."""
        self._frozen.set()

    def kill(self) -> None:
        """Die like an engine whose process is gone: :meth:`alive` says False from now on."""
        self._dead = True
        self.freeze()

    @property
    def steps(self) -> StepClock:
        """One step per token produced."""
        return self._steps

    def prefill_tokens(self) -> int:
        """Prompt tokens (words) of requests that have not made their first step yet."""
        return sum(self._prefilling.values())

    def alive(self) -> bool:
        """False after :meth:`kill`."""
        return not self._dead

    async def _hang_if_frozen(self) -> None:
        if self._frozen.is_set():
            await asyncio.Event().wait()  # never set: a stuck engine

    @property
    def running(self) -> frozenset[str]:
        """Request ids being generated now."""
        return frozenset(self._aborts)

    def _failure(self, prompt: str) -> Exception | None:
        if self.crash_marker in prompt:
            return RuntimeError("scripted crash")
        if self.fail_marker in prompt:
            return EngineError("scripted failure: the prompt asked to fail")
        if self.retry_marker in prompt:
            if self.fail_times is not None and self._failures[prompt] >= self.fail_times:
                return None
            self._failures[prompt] += 1
            return EngineError("scripted transient failure", retryable=True)
        return None

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        """Yield the scripted deltas; the last carries ``finish_reason`` and counts.

        Without ``request.deltas``, one delta with the whole text when the request ends.
        """
        text: list[str] = []
        async with aclosing(self._deltas(request)) as deltas:
            async for delta in deltas:
                if request.deltas:
                    yield delta
                elif delta.finish_reason is None:
                    text.append(delta.text)
                else:
                    yield EngineDelta("".join([*text, delta.text]), *astuple(delta)[1:])

    async def _deltas(self, request: EngineRequest) -> AsyncGenerator[EngineDelta, None]:
        rid = request.request_id
        if rid in self._aborts:
            raise EngineError(f"request id {rid!r} is already running")
        failure = self._failure(request.prompt)
        pieces = script(request.prompt, request.params.max_tokens)
        prompt_tokens = len(request.prompt.split())
        abort = self._aborts[rid] = asyncio.Event()
        self._prefilling[rid] = prompt_tokens
        self._steps.work_arrived()
        self.started.append(rid)
        self.images[rid] = list(request.images)
        self.peak_running = max(self.peak_running, len(self._aborts))
        try:
            for i, piece in enumerate(pieces):
                await self._hang_if_frozen()
                if failure is not None and i == self.fail_after:
                    raise failure
                if self.token_delay_s > 0:
                    try:
                        async with asyncio.timeout(self.token_delay_s):
                            await abort.wait()
                    except TimeoutError:
                        pass
                await self._hang_if_frozen()
                if abort.is_set():
                    yield EngineDelta("", "abort", prompt_tokens, i)
                    return
                last = i == len(pieces) - 1
                prefilled = self._prefilling.pop(rid, 0)
                busy = not last or len(self._aborts) > 1
                self._steps.step(
                    busy_after=busy, prefilled=prefilled, prefill_next=self.prefill_tokens()
                )
                yield EngineDelta(piece, "length" if last else None, prompt_tokens, i + 1)
            self.finished.append(rid)
        finally:
            del self._aborts[rid]
            self._prefilling.pop(rid, None)

    async def abort(self, request_id: str) -> None:
        """End the request now: its stream finishes with reason ``abort``."""
        event = self._aborts.get(request_id)
        if event is not None and not event.is_set():
            event.set()
            self.aborted.append(request_id)
