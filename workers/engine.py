"""The seam between the worker loop and an inference engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from queueing.schemas import SamplingParams, TokenLogprob, ToolCall
from workers.steps import StepClock


@dataclass(frozen=True)
class EngineRequest:
    """What the engine is asked to run."""

    request_id: str
    prompt: str
    params: SamplingParams
    priority: int = 0
    # False: one delta with the whole text when the request ends (cheaper for the engine).
    deltas: bool = True
    # The prepared images (JPEG or PNG bytes), in the order of their placeholders in ``prompt``.
    images: tuple[bytes, ...] = ()


@dataclass
class EngineDelta:
    """A piece of output; the last one carries ``finish_reason`` and token counts."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] | None = None  # this piece's tokens, when they were asked for
    tool_calls: list[ToolCall] | None = None  # on the last delta, when the params parse tools


class EngineError(Exception):
    """The engine failed the request; ``retryable`` says whether another try may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Engine(Protocol):
    """An inference engine the worker loop drives."""

    @property
    def slots(self) -> int:
        """How many requests the engine runs at once; more wait inside it."""
        ...

    def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        """Stream output deltas for one request."""
        ...

    async def abort(self, request_id: str) -> None:
        """Stop a running request now."""
        ...

    @property
    def steps(self) -> StepClock:
        """The engine's steps so far (every step that produced output counts)."""
        ...

    def prefill_tokens(self) -> int:
        """Prompt tokens still to prefill that the engine's next step may take on."""
        ...

    def alive(self) -> bool:
        """False once the engine itself is gone (its process died, its loop failed)."""
        ...
