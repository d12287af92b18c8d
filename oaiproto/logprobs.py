"""Log probabilities in OpenAI's two shapes: chat's ``content`` list, completions' columns."""

from __future__ import annotations

from typing import Any

from queueing.schemas import TokenLogprob


def chat_logprobs(tokens: list[TokenLogprob] | None) -> dict[str, Any] | None:
    """``choices[].logprobs`` of a chat completion (or chunk)."""
    if tokens is None:
        return None
    return {"content": [t.model_dump() for t in tokens], "refusal": None}


def completion_logprobs(
    tokens: list[TokenLogprob] | None, offset: int = 0
) -> dict[str, Any] | None:
    """``choices[].logprobs`` of a text completion: tokens, their logprobs, tops, offsets."""
    if tokens is None:
        return None
    offsets: list[int] = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{top.token: top.logprob for top in t.top_logprobs} for t in tokens],
        "text_offset": offsets,
    }
