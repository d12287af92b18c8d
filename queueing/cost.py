"""The cost model: a request's estimated engine work in model units, and its band."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from queueing.catalogue import ModelSpec


@dataclass(frozen=True)
class CostEstimate:
    """Estimated units and the cost band they fall in."""

    units: float
    band: int
    expected_output_tokens: int


def expected_output_tokens(max_tokens: int, recent_mean: float | None) -> int:
    """``max_tokens``, tempered by what this tenant and model produced lately."""
    if recent_mean is None or recent_mean <= 0:
        return max_tokens
    return max(1, min(max_tokens, math.ceil(1.5 * recent_mean)))


def estimate(
    spec: ModelSpec,
    *,
    prompt_tokens: int,
    max_tokens: int,
    images: int = 0,
    recent_output_mean: float | None = None,
) -> CostEstimate:
    """Units for one request: weighted prompt and output tokens plus images."""
    output = expected_output_tokens(max_tokens, recent_output_mean)
    units = (
        prompt_tokens * spec.prompt_weight / 1000
        + output * spec.output_weight / 1000
        + images * spec.image_weight
    )
    units = round(units, 4)
    return CostEstimate(
        units=units, band=bisect.bisect_left(spec.band_edges, units), expected_output_tokens=output
    )
