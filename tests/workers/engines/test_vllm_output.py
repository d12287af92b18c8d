"""vLLM's output in inferq's terms: log probabilities per token, tool calls from the text."""

from __future__ import annotations

import json
from types import SimpleNamespace

from queueing.schemas import ToolParsing
from workers.engines.vllm_output import ToolCallReader, token_logprobs


def candidate(token: str, logprob: float, rank: int) -> SimpleNamespace:
    return SimpleNamespace(decoded_token=token, logprob=logprob, rank=rank)


def test_each_sampled_token_with_its_top_alternatives_in_rank_order() -> None:
    # vLLM gives each position the sampled token plus the top N (the sampled one may rank low).
    position = {
        7: candidate(" Paris", -0.1, 1),
        9: candidate(" Lyon", -3.0, 3),
        8: candidate(" France", -2.0, 2),
    }
    [entry] = token_logprobs([9], [position], top=2) or []
    assert (entry.token, entry.logprob) == (" Lyon", -3.0)
    assert entry.bytes == list(b" Lyon")
    assert [t.token for t in entry.top_logprobs] == [" Paris", " France"]
    assert token_logprobs([9], None, top=2) is None


def test_constrained_calls_leave_no_content() -> None:
    reader = ToolCallReader(tokenizer=None)
    content, calls = reader.read('{"city": "Paris"}', ToolParsing(mode="named", function="w"))
    assert content == "" and calls[0].function.name == "w"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    cut = '{"city": "Pa'
    assert reader.read(cut, ToolParsing(mode="named", function="w")) == (cut, [])
