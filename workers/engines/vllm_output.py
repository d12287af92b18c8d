"""inferq's sampling parameters as vLLM's, and vLLM's output as inferq's: log probabilities
in OpenAI's terms, tool calls read back with vLLM's own tool parsers.

vLLM is imported inside the functions (it is heavy, and absent where the scripted engine runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oaiproto.tools import call_id, constrained_calls
from queueing.schemas import (
    FunctionCall,
    SamplingParams,
    TokenLogprob,
    ToolCall,
    ToolParsing,
    TopLogprob,
)


def vllm_sampling(p: SamplingParams, *, deltas: bool) -> Any:
    """vLLM's ``SamplingParams`` for ``p``; ``deltas`` False: one output at the end."""
    from vllm import SamplingParams as VllmSampling
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    structured = None
    if p.json_schema is not None:
        structured = StructuredOutputsParams(json=p.json_schema)
    elif p.json_object:
        structured = StructuredOutputsParams(json_object=True)
    return VllmSampling(
        max_tokens=p.max_tokens,
        temperature=p.temperature,
        top_p=p.top_p,
        stop=p.stop or None,
        seed=p.seed,
        ignore_eos=p.ignore_eos,
        presence_penalty=p.presence_penalty,
        frequency_penalty=p.frequency_penalty,
        repetition_penalty=p.repetition_penalty,
        logit_bias={int(token): bias for token, bias in p.logit_bias.items()} or None,
        logprobs=p.logprobs,
        structured_outputs=structured,
        output_kind=RequestOutputKind.DELTA if deltas else RequestOutputKind.FINAL_ONLY,
    )


def _top(token: str) -> dict[str, Any]:
    return {"token": token, "bytes": list(token.encode())}


def token_logprobs(
    token_ids: Sequence[int], logprobs: Sequence[dict[int, Any]] | None, top: int
) -> list[TokenLogprob] | None:
    """Each sampled token with its log probability and the ``top`` most likely at its place."""
    if logprobs is None:
        return None
    out: list[TokenLogprob] = []
    for token_id, candidates in zip(token_ids, logprobs, strict=False):
        chosen = candidates[token_id]
        ranked = sorted(candidates.values(), key=lambda c: c.rank)[:top]
        out.append(
            TokenLogprob(
                **_top(chosen.decoded_token or ""),
                logprob=max(chosen.logprob, -9999.0),
                top_logprobs=[
                    TopLogprob(**_top(c.decoded_token or ""), logprob=max(c.logprob, -9999.0))
                    for c in ranked
                ],
            )
        )
    return out


class ToolCallReader:
    """Reads the tool calls in a finished output: constrained JSON, or free text for ``auto``.

    ``auto`` uses vLLM's tool parser of that name (``hermes`` reads ``<tool_call>`` blocks,
    the form the chat template is given for models without a tools template).
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def read(self, text: str, parsing: ToolParsing) -> tuple[str, list[ToolCall]]:
        """The content left for the message, and the calls (``[]`` when there are none)."""
        if parsing.mode != "auto":
            calls = constrained_calls(text, parsing)
            return ("" if calls else text), calls
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.tool_parsers import ToolParserManager

        parser = ToolParserManager.get_tool_parser(parsing.parser)(self.tokenizer)
        request = ChatCompletionRequest(model="-", messages=[{"role": "user", "content": ""}])
        found = parser.extract_tool_calls(text, request)
        if not found.tools_called:
            return text, []
        calls = [
            ToolCall(
                id=call_id(),
                function=FunctionCall(name=c.function.name, arguments=c.function.arguments),
            )
            for c in found.tool_calls
        ]
        return found.content or "", calls if parsing.parallel else calls[:1]
