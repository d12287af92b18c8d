"""Bench workloads from the Azure LLM conversation trace, scaled to a small model on a CPU.

Trace: ``azure_llm_conv_2023.csv`` (Azure/AzurePublicDataset, Splitwise, ISCA 2024),
CC-BY 4.0. Only its prompt/output length mix is used here; token counts are scaled down
(``prompt_scale``, ``output_scale``) to what SmolLM2-135M on two CPU cores can serve.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenizers import Tokenizer

ATTRIBUTION = (
    "length mix: Azure LLM inference trace (conv, 2023-11-16), Azure/AzurePublicDataset, CC-BY 4.0"
)
TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "azure_llm_conv_2023.csv"
# Plain prose to cut prompts from; any text works, the lengths are what matter.
_FILLER = (
    "The lighthouse keeper climbed the spiral stairs every evening to light the lamp. "
    "Ships passed in the night and the sea was calm or wild as the seasons turned. "
    "One morning he found a bottle on the rocks with a letter inside, written long ago "
    "by a sailor who hoped someone would read it and answer. "
)


@dataclass(frozen=True)
class Request:
    """One completion request of the bench."""

    prompt: str
    max_tokens: int
    kind: str = "mixed"  # "short" or "long" in the mixed workload


@dataclass(frozen=True)
class Scale:
    """How trace lengths map to this model: multiply, then clamp."""

    prompt: float = 1 / 16
    output: float = 1 / 4
    min_prompt: int = 8
    min_output: int = 4
    max_prompt: int = 1024
    max_output: int = 512

    def prompt_tokens(self, n: int) -> int:
        """Scaled prompt length."""
        return max(self.min_prompt, min(self.max_prompt, round(n * self.prompt)))

    def output_tokens(self, n: int) -> int:
        """Scaled output length."""
        return max(self.min_output, min(self.max_output, round(n * self.output)))


def read_trace(path: Path = TRACE) -> list[tuple[int, int]]:
    """(prompt tokens, output tokens) of every request in the trace."""
    with path.open() as f:
        return [(int(r["ContextTokens"]), int(r["GeneratedTokens"])) for r in csv.DictReader(f)]


class PromptMaker:
    """Prompts of an exact token length, cut from filler text with the model's tokenizer."""

    def __init__(self, model_dir: Path) -> None:
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        ids = self.tokenizer.encode(_FILLER, add_special_tokens=False).ids
        self.ids = ids * (4096 // len(ids) + 1)

    def prompt(self, tokens: int, salt: int) -> str:
        """``tokens`` tokens of text; ``salt`` varies the start so prompts share no prefix."""
        start = salt * 7 % 97
        return str(self.tokenizer.decode(self.ids[start : start + tokens]))


def throughput_set(maker: PromptMaker, n: int, scale: Scale, seed: int = 7) -> list[Request]:
    """``n`` requests drawn from the trace's length mix."""
    rng = random.Random(seed)
    rows = rng.sample(read_trace(), n)
    return [
        Request(maker.prompt(scale.prompt_tokens(p), i), scale.output_tokens(o))
        for i, (p, o) in enumerate(rows)
    ]


def mixed_set(maker: PromptMaker, n: int, scale: Scale, seed: int = 11) -> list[Request]:
    """90% short and 10% long requests, shuffled: short from the trace's lower half by
    output length, long from its top decile (scaled alike, long outputs at 4x)."""
    rng = random.Random(seed)
    rows = sorted(read_trace(), key=lambda r: r[1])
    lower, top = rows[: len(rows) // 2], rows[-len(rows) // 10 :]
    n_long = max(1, n // 10)
    requests = [
        Request(maker.prompt(scale.prompt_tokens(p), i), scale.output_tokens(o), "short")
        for i, (p, o) in enumerate(rng.sample(lower, n - n_long))
    ]
    requests += [
        Request(
            maker.prompt(scale.prompt_tokens(p), n + i),
            min(scale.max_output, scale.output_tokens(o) * 4),
            "long",
        )
        for i, (p, o) in enumerate(rng.sample(top, n_long))
    ]
    rng.shuffle(requests)
    return requests


def dump(requests: list[Request], path: Path) -> None:
    """Write requests as JSON (for the offline side's subprocess)."""
    path.write_text(json.dumps([asdict(r) for r in requests]))


def load(path: Path) -> list[Request]:
    """Read requests written by :func:`dump`."""
    return [Request(**r) for r in json.loads(path.read_text())]
